"""Figure set 2 (Gavel Fig. 9): multi-GPU jobs, 36:36:36, 2.6 and 2.8 jobs/h, seeds 0-2.

python -m benchmarks.gavel_fig9 [--seeds 0] [--policies las las-agnostic]
"""

from benchmarks.gavel_continuous import main

if __name__ == "__main__":
    main(True, [2.6, 2.8], "continuous-multiple", "gavel_fig9")
