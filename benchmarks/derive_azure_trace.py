"""Re-derive the shipped Azure LLM trace copy from the original CSVs (CC BY 4.0).

    python benchmarks/derive_azure_trace.py ../shared/data/azure-llm-v2023

Writes src/computepool/catalog/data/serving/azure_llm_2023_{conv,code}.csv.gz: one row per
request, ``offset_ms`` (milliseconds since the previous request, rounded), prompt and generated
tokens unchanged. Deterministic (gzip without a timestamp).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

from computepool.serving.streams import _parse_azure_csv

OUT = Path("src/computepool/catalog/data/serving")
HEAD = (
    "# Derived from Azure/AzurePublicDataset data/AzureLLMInferenceTrace_{kind}.csv "
    "(CC BY 4.0), commit b469a113.\n"
    "# offset_ms = milliseconds since the previous request (first row: since the first "
    "request); tokens unchanged.\n"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="folder with AzureLLMInferenceTrace_{conv,code}.csv")
    args = ap.parse_args()
    for kind in ("conv", "code"):
        base = _parse_azure_csv(Path(args.folder) / f"AzureLLMInferenceTrace_{kind}.csv")
        ms = np.round(base.t * 1000).astype(np.int64)
        rows = zip(
            np.diff(ms, prepend=0), base.prompt.astype(int), base.output.astype(int), strict=True
        )
        text = HEAD.format(kind=kind) + "offset_ms,context_tokens,generated_tokens\n"
        text += "".join(f"{a},{b},{c}\n" for a, b, c in rows)
        path = OUT / f"azure_llm_2023_{kind}.csv.gz"
        path.write_bytes(gzip.compress(text.encode(), 9, mtime=0))
        print(f"wrote {path}: {len(base.t)} requests")


if __name__ == "__main__":
    main()
