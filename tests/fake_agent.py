"""A stand-in for a command agent: reads the prompt from stdin (or one argument), answers.

    fake_agent.py [--exit N] [--sleep S] [--empty] [--ignore-stdin] [--show-env NAME] [PROMPT]

Prints "answer to: <prompt>" on stdout and "thinking" on stderr. More than one PROMPT
argument is an error (exit 64), so a test can tell that the prompt arrived as ONE argument.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exit", type=int, default=0, help="fail with this exit code")
    parser.add_argument("--sleep", type=float, default=0.0, help="think this long first")
    parser.add_argument("--empty", action="store_true", help="answer nothing")
    parser.add_argument("--ignore-stdin", action="store_true", help="never read stdin")
    parser.add_argument("--show-env", metavar="NAME", help="answer with this variable's value")
    parser.add_argument("prompt", nargs="*")
    args = parser.parse_args()
    if len(args.prompt) > 1:
        print(f"fake agent: expected one prompt argument, got {len(args.prompt)}", file=sys.stderr)
        return 64
    if args.prompt:
        prompt = args.prompt[0]
    elif args.ignore_stdin:
        prompt = ""
    else:
        prompt = sys.stdin.read()
    print("thinking", file=sys.stderr, flush=True)
    if args.sleep:
        time.sleep(args.sleep)
    if args.exit:
        print("fake agent: the model is unavailable", file=sys.stderr)
        return int(args.exit)
    if args.show_env:
        print(os.environ.get(args.show_env, "<unset>"))
    elif not args.empty:
        print(f"answer to: {prompt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
