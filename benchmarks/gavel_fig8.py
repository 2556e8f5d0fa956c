"""Figure set 1 (Gavel Fig. 8): single-GPU jobs, 36:36:36, rates 4.0-6.0 jobs/h, seeds 0-2.

python -m benchmarks.gavel_fig8 [--rates 5.6] [--seeds 0] [--policies las las-agnostic]
"""

from benchmarks.gavel_continuous import main

if __name__ == "__main__":
    main(False, [4.0, 4.4, 4.8, 5.2, 5.6, 6.0], "continuous-single", "gavel_fig8")
