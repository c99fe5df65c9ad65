"""The lab's commands, `mirrorkit lab …` and `mirrorkit demo`.

They reach the `mirrorkit` command through the `mirrorkit.commands` entry point group, so the
kit imports nothing from the lab and works without it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

STATE_HELP = "state directory (default: $MIRRORKIT_LAB_STATE_DIR or .mirrorkit-lab)"


def add_lab_parser(sub) -> None:
    lab = sub.add_parser("lab", help="the local stand-in SQL Server")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    p = lab_sub.add_parser("up", help="start one instance per entry of the parameter file, in the background")
    p.add_argument("params")
    p.add_argument("--state-dir", help=STATE_HELP)
    p = lab_sub.add_parser("down", help="stop the lab's instances")
    p.add_argument("params", nargs="?", help="ignored; the state directory knows the instances")
    p.add_argument("--state-dir", help=STATE_HELP)
    p = lab_sub.add_parser("status", help="instances: address, process state, endpoint, databases")
    p.add_argument("params", nargs="?", help="ignored; the state directory knows the instances")
    p.add_argument("--json", action="store_true", help="the same as JSON (system databases included)")
    p.add_argument("--state-dir", help=STATE_HELP)
    for verb, what in (("kill", "end an instance's process at once with SIGKILL, as a crash would"),
                       ("freeze", "stop an instance's process with SIGSTOP, a hung host"),
                       ("thaw", "resume a frozen instance (SIGCONT)")):
        p = lab_sub.add_parser(verb, help=f"{what} (LAB-ONLY rehearsal)")
        p.add_argument("name", help="instance name, as in the parameter file")
        p.add_argument("--state-dir", help=STATE_HELP)
    p = lab_sub.add_parser("serve", help="serve the instances in the foreground (debugging)")
    p.add_argument("params")
    p.add_argument("--state-dir", help=STATE_HELP)
    p = lab_sub.add_parser("cp", help="copy a file between two instances' server file systems")
    p.add_argument("source", help="INSTANCE:PATH")
    p.add_argument("target", help="INSTANCE:PATH")
    p.add_argument("--state-dir", help=STATE_HELP)
    p = lab_sub.add_parser("probe", help="make instance A connect to B's mirroring endpoint")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--role", default="PARTNER", choices=["PARTNER", "WITNESS"])
    p.add_argument("--state-dir", help=STATE_HELP)
    p = lab_sub.add_parser("cut", help="LAB-ONLY: silently drop all traffic between two instances")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--state-dir", help=STATE_HELP)
    p = lab_sub.add_parser("heal", help="LAB-ONLY: undo `lab cut` between two instances (all cuts without names)")
    p.add_argument("a", nargs="?")
    p.add_argument("b", nargs="?")
    p.add_argument("--state-dir", help=STATE_HELP)
    p = lab_sub.add_parser("clock", help="LAB-ONLY: shift an instance's clock for certificate validity checks")
    p.add_argument("name")
    p.add_argument("offset", help="+30d, -2h, +90m, +15s or reset")
    p.add_argument("--state-dir", help=STATE_HELP)


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="start the lab and run the demo against it")
    p.add_argument("--params", default=None, help="parameter file (default: parameters/lab.yaml)")
    p.add_argument("--state-dir", help=STATE_HELP)


def lab(args: argparse.Namespace) -> int:
    from . import supervisor as sup
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
            from .status import status
            return status(state, as_json=args.json)
        if args.lab_command in ("kill", "freeze", "thaw"):
            getattr(sup, args.lab_command)(state, args.name)
            return 0
        if args.lab_command == "cp":
            sup.copy(state, args.source, args.target)
            return 0
        if args.lab_command == "serve":
            from .config import load_instances
            from .process import serve
            specs = load_instances(Path(args.params))
            password = sup.sa_password(state)
            print("serving " + ", ".join(f"{s.name} at {s.server}" for s in specs) + " (Ctrl-C stops)",
                  flush=True)
            serve(state, [(s.name, s.host, s.port) for s in specs], password)
            return 0
        if args.lab_command == "cut":
            sup.cut(state, args.a, args.b)
            return 0
        if args.lab_command == "heal":
            sup.heal(state, args.a, args.b)
            return 0
        if args.lab_command == "clock":
            sup.clock(state, args.name, args.offset)
            return 0
        if args.lab_command == "probe":
            from .probe import probe_cli
            return probe_cli(state, args.source, args.target, args.role)
    except (sup.LabError, sup.LabConfigError) as exc:
        print(f"mirrorkit lab {args.lab_command}: {exc}", file=sys.stderr)
        return 2
    return 2


def demo(args: argparse.Namespace) -> int:
    from . import supervisor as sup
    from .demo import DEFAULT_PARAMS, run
    try:
        return run(Path(args.params) if args.params else DEFAULT_PARAMS, sup.state_dir_from(args.state_dir))
    except (sup.LabError, sup.LabConfigError) as exc:
        print(f"mirrorkit demo: {exc}", file=sys.stderr)
        return 2


class LabCommand:
    """`mirrorkit lab …` (entry point mirrorkit.commands: lab)."""
    add_parser = staticmethod(add_lab_parser)
    run = staticmethod(lab)


class DemoCommand:
    """`mirrorkit demo` (entry point mirrorkit.commands: demo)."""
    add_parser = staticmethod(add_demo_parser)
    run = staticmethod(demo)
