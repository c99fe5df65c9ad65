"""The `mirrorkit` command."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .execution.outcome import ExitCode


LAB_MISSING = ("the lab (the local stand-in SQL Server) is not installed. Install it with "
               "pip install 'mirrorkit[lab]' (from a checkout: pip install ./lab), or run make demo")


def _plugins() -> dict:
    """Commands other distributions add (entry point group mirrorkit.commands: the lab adds lab and demo)."""
    from importlib.metadata import entry_points
    found = {}
    for ep in entry_points(group="mirrorkit.commands"):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not take the kit's own commands down
            print(f"mirrorkit: the command {ep.name!r} from {ep.value} cannot be loaded: {exc}", file=sys.stderr)
    return found


def _verify(args: argparse.Namespace) -> int:
    import json
    from .access.connection import ConnectionFailed
    from .access.credentials import REGISTRY, SecretError
    from .config import parameters as params
    from .core import verify
    from .notebook.session import Session
    try:
        env = params.load(Path(args.params))
    except params.ParameterError as exc:
        print(f"mirrorkit verify: invalid parameters, nothing was checked:\n{exc}", file=sys.stderr)
        return ExitCode.INVALID_PARAMETERS
    try:
        with Session(env) as session:
            # an unresolvable secret is the operator's to fix (exit 2), not an unreachable instance (I00)
            for ref, label in env.secret_references(connections_only=True):
                session.secret(ref, label)
            verdict = verify.evaluate(env, verify.collect(env, session.connection))
    except (SecretError, ConnectionFailed) as exc:
        print(f"mirrorkit verify: {REGISTRY.redact(str(exc))}", file=sys.stderr)
        return ExitCode.INVALID_PARAMETERS
    sys.stdout.write(REGISTRY.redact(verify.text_report(env, verdict)))
    if args.json:
        Path(args.json).write_text(json.dumps(verify.verdict_record(env, verdict), indent=2, default=str) + "\n")
    return ExitCode.STEP_FAILED if verdict.failed else ExitCode.OK


def build_parser(plugins: dict | None = None) -> argparse.ArgumentParser:
    plugins = _plugins() if plugins is None else plugins
    parser = argparse.ArgumentParser(prog="mirrorkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
    for name, command in plugins.items():
        command.add_parser(sub)
    for name in ("lab", "demo"):
        if name not in plugins:
            p = sub.add_parser(name, help="(needs the lab: pip install 'mirrorkit[lab]')", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:     # a run handles the first Ctrl-C itself; this is the second, or another command
        print("\nmirrorkit: aborted (Ctrl-C)", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _main(argv: list[str] | None) -> int:
    plugins = _plugins()
    args = build_parser(plugins).parse_args(argv)
    if args.command in plugins:
        return plugins[args.command].run(args)
    if args.command in ("lab", "demo"):
        print(f"mirrorkit {args.command}: {LAB_MISSING}", file=sys.stderr)
        return 2
    if args.command == "verify":
        return _verify(args)
    if args.command == "run":
        from .execution.runner import run
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
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
