"""Table 1 of the MIFQ paper (§5.3) from one command: every registered imitation algorithm (registry.IMITATION:
BC, IIQ, IQVDN, MASQIL, MAGAIL, MIFQ) and offline MIFQ, on the three MPE tasks (or SMAX), >= 3 seeds, at 128
demonstrations and over the demo-count sweep, then the report in the paper's layout (methods as rows, tasks as
columns; a demo-count table and plot; score curves with expert and random as lines).

Each cell is one run of benchmarks/mifq_mpe.py (its budgets and protocol, see there): MIFQ-style methods 8000 env
steps (MPE), BC 10 000 offline updates, MAGAIL --adversarial-env-steps (100 000) of MAPPO's 2000-step batches.
Resumable: cells already in --out are skipped, so a stopped run picks up where it was, and a newly registered
algorithm only adds its own rows. --shard i/k splits the grid between processes (two on a 2-CPU machine).

    python benchmarks/table1.py --shard 0/2 &  python benchmarks/table1.py --shard 1/2   # MPE, ~4 h on 2 CPUs
    python benchmarks/table1.py --report-only                                              # docs/table1_mpe_results.md
    python benchmarks/table1.py --benchmark smax --demos 128 1024                          # SMAX rows (hours)
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

BENCHMARKS = {
    # tasks and the mifq_mpe.py settings that differ from its MPE defaults
    "mpe": (["mpe/simple_spread", "mpe/simple_reference", "mpe/simple_speaker_listener"], []),
    # SMAX: 100-step battles, gamma 0.99, 20 000 env steps (benchmarks/results/smax_imitation.jsonl's protocol)
    "smax": (["smax/smacv2_5_units"], ["--gamma", "0.99", "--env-steps", "20000", "--eval-every", "40"]),
}


def methods():
    """Every registered imitation algorithm in the paper's order, then offline MIFQ."""
    from rllib_mil.algorithms.registry import IMITATION
    from rllib_mil.report import ALGO_ORDER

    names = sorted(IMITATION, key=lambda a: (ALGO_ORDER.index(a) if a in ALGO_ORDER else len(ALGO_ORDER), a))
    return names + ["MIFQ:offline"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="mpe")
    p.add_argument("--methods", nargs="+", help="default: every registered imitation algorithm and MIFQ:offline")
    p.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    p.add_argument("--demos", nargs="+", default=["128", "16", "4"], help="demo counts (128 first: Table 1 itself)")
    p.add_argument("--shard", default="0/1")
    p.add_argument("--out", help="default: benchmarks/results/table1_<benchmark>.jsonl")
    p.add_argument("--docs", default=os.path.join(os.path.dirname(HERE), "docs"))
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    out = args.out or os.path.join(HERE, "results", f"table1_{args.benchmark}.jsonl")
    tasks, extra = BENCHMARKS[args.benchmark]
    if not args.report_only:
        import mifq_mpe

        mifq_mpe.main(["--tasks", *tasks, "--methods", *(args.methods or methods()), "--seeds", *args.seeds,
                       "--demos", *args.demos, "--out", out, "--shard", args.shard, *extra])
    from rllib_mil.report import benchmark_report

    print(benchmark_report(out, args.docs, name=f"table1_{args.benchmark}",
                           title=f"Table 1 ({args.benchmark.upper()}): benchmarks/table1.py --benchmark {args.benchmark}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
