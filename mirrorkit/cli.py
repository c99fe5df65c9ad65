"""The `mirrorkit` command."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _lab(args: argparse.Namespace) -> int:
    from .lab import supervisor as sup
    state = sup.state_dir_from(args.state_dir)
    try:
        if args.lab_command == "up":
            sup.up(Path(args.params), state)
            print(f"lab state in {state}; sa password in {sup.password_file(state)}")
            return 0
        if args.lab_command == "down":
            sup.down(state)
            return 0
        if args.lab_command == "status":
            return sup.status(state)
        if args.lab_command == "cp":
            sup.copy(state, args.source, args.target)
            return 0
        if args.lab_command == "serve":
            from .lab.config import load_instances
            from .lab.process import serve
            specs = load_instances(Path(args.params))
            password = sup.sa_password(state)
            print("serving " + ", ".join(f"{s.name} at {s.server}" for s in specs) + " (Ctrl-C stops)",
                  flush=True)
            serve(state, [(s.name, s.host, s.port) for s in specs], password)
            return 0
        if args.lab_command == "probe":
            from .lab.probe import probe_cli
            return probe_cli(state, args.source, args.target, args.role)
    except (sup.LabError, sup.LabConfigError) as exc:
        print(f"mirrorkit lab {args.lab_command}: {exc}", file=sys.stderr)
        return 2
    return 2


def _verify(args: argparse.Namespace) -> int:
    import json
    from . import params, verify
    from .connect import ConnectionFailed
    from .runbook import Run
    from .secrets import REGISTRY, SecretError
    try:
        env = params.load(Path(args.params))
    except params.ParameterError as exc:
        print(f"mirrorkit verify: invalid parameters, nothing was checked:\n{exc}", file=sys.stderr)
        return 2
    run = Run("verify", env, None, "plan", "", Path("."), False)
    try:
        verdict = verify.evaluate(env, verify.collect(env, run.connection))
    except (SecretError, ConnectionFailed) as exc:
        print(f"mirrorkit verify: {REGISTRY.redact(str(exc))}", file=sys.stderr)
        return 2
    finally:
        for c in run._connections.values():
            c.close()
    sys.stdout.write(REGISTRY.redact(verify.text_report(env, verdict)))
    if args.json:
        Path(args.json).write_text(json.dumps(verify.verdict_record(env, verdict), indent=2, default=str) + "\n")
    return 1 if verdict.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirrorkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="the local stand-in SQL Server")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    state_help = "state directory (default: $MIRRORKIT_LAB_STATE_DIR or .mirrorkit-lab)"
    p = lab_sub.add_parser("up", help="start one instance per entry of the parameter file, in the background")
    p.add_argument("params")
    p.add_argument("--state-dir", help=state_help)
    p = lab_sub.add_parser("down", help="stop the lab's instances")
    p.add_argument("params", nargs="?", help="ignored; the state directory knows the instances")
    p.add_argument("--state-dir", help=state_help)
    p = lab_sub.add_parser("status", help="instances, addresses and endpoint state")
    p.add_argument("params", nargs="?", help="ignored; the state directory knows the instances")
    p.add_argument("--state-dir", help=state_help)
    p = lab_sub.add_parser("serve", help="serve the instances in the foreground (debugging)")
    p.add_argument("params")
    p.add_argument("--state-dir", help=state_help)
    p = lab_sub.add_parser("cp", help="copy a file between two instances' server file systems")
    p.add_argument("source", help="INSTANCE:PATH")
    p.add_argument("target", help="INSTANCE:PATH")
    p.add_argument("--state-dir", help=state_help)
    p = lab_sub.add_parser("probe", help="make instance A connect to B's mirroring endpoint")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--role", default="PARTNER", choices=["PARTNER", "WITNESS"])
    p.add_argument("--state-dir", help=state_help)
    p = sub.add_parser("run", help="execute the runbook with papermill and seal the run folder",
                       epilog="exit codes: 0 ok, 1 a step failed (including verify FAIL), 2 invalid parameters "
                              "(nothing executed), 3 a secret found in a record (not sealed), 4 a step timed out, "
                              "5 a kernel died, 130 interrupted (Ctrl-C; the run is sealed as interrupted)")
    p.add_argument("params", help="parameter file, e.g. parameters/lab.yaml")
    p.add_argument("--mode", default="plan", choices=["plan", "apply"])
    p.add_argument("--only", choices=["outbound", "inbound", "witness", "verify"])
    p.add_argument("--target", help="only the steps for this instance")
    p.add_argument("--jobs", type=int, default=1, help="notebooks of one stage run in parallel (default 1)")
    p.add_argument("--out", help="folder for run folders (default runs/<environment>)")
    p.add_argument("--change-id", help="change ticket; appended to the run folder name and recorded")
    p.add_argument("--cell-timeout", type=int, default=600, help="seconds per cell (default 600)")
    p.add_argument("--certificate-dir", help="public certificate artifacts (default runs/<environment>/certificates)")
    p = sub.add_parser("report", help="summarise a run folder; --check verifies the sealed hashes")
    p.add_argument("run_dir")
    p.add_argument("--check", action="store_true", help="exit 1 when a file changed after sealing")
    p = sub.add_parser("verify", help="check the trust on every instance and pair (read-only); exit 1 on FAIL")
    p.add_argument("params", help="parameter file, e.g. parameters/prod.yaml")
    p.add_argument("--json", help="also write the verdict as JSON to this file")
    p = sub.add_parser("demo", help="start the lab and run the demo against it")
    p.add_argument("--params", default=None, help="parameter file (default: parameters/lab.yaml)")
    p.add_argument("--state-dir", help=state_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:     # a run handles the first Ctrl-C itself; this is the second, or another command
        print("\nmirrorkit: aborted (Ctrl-C)", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "lab":
        return _lab(args)
    if args.command == "verify":
        return _verify(args)
    if args.command == "run":
        from .runner import run
        outcome = run(Path(args.params), mode=args.mode, only=args.only, target=args.target, jobs=args.jobs,
                      out=Path(args.out) if args.out else None, change_id=args.change_id,
                      cell_timeout=args.cell_timeout,
                      certificate_dir=Path(args.certificate_dir) if args.certificate_dir else None)
        if outcome.run_dir is None:
            print(f"mirrorkit run: {outcome.message}", file=sys.stderr)
        return outcome.exit_code
    if args.command == "report":
        from .report import ReportError, check, summary
        try:
            sys.stdout.write(summary(Path(args.run_dir)))
            if args.check:
                problems = check(Path(args.run_dir))
                for p in problems:
                    print(f"CHECK FAILED: {p}")
                print("check: intact" if not problems else f"check: {len(problems)} problem(s)")
                return 1 if problems else 0
        except ReportError as exc:
            print(f"mirrorkit report: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "demo":
        from .demo import DEFAULT_PARAMS, run
        from .lab import supervisor as sup
        try:
            return run(Path(args.params) if args.params else DEFAULT_PARAMS,
                       sup.state_dir_from(args.state_dir))
        except (sup.LabError, sup.LabConfigError) as exc:
            print(f"mirrorkit demo: {exc}", file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
