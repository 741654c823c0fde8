"""The command line's arguments: every command, its options and its help."""

from __future__ import annotations

import argparse

__all__ = ["build_parser"]

EPILOG = """\
exit codes: 0 success; 1 a prediction failed or was canceled (or a webhook did not
verify); 2 usage error; 3 API or transport error; 130 interrupted, 143 terminated
(Ctrl-C and SIGTERM cancel the predictions the command started first).

environment: REPLICATE_API_TOKEN (or --token), REPLICATE_BASE_URL (or --base-url).
"""

INPUTS_HELP = (
    "an input, key=value (repeatable). The value is parsed as JSON when it can be "
    "(5, true, [1,2], {...}), else kept as text (quote it as JSON to keep digits text: "
    "year='\"1984\"'); key=@path uploads that file"
)


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global options, on the top level and on every command (either place works)."""
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--base-url",
        default=default,
        help="the API's base URL (default: REPLICATE_BASE_URL or https://api.replicate.com/v1)",
    )
    group.add_argument(
        "--token", default=default, help="the API token (default: REPLICATE_API_TOKEN)"
    )
    group.add_argument(
        "--emulator",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="run against an emulator of the API started in this process (no token, no network)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and the client's log (the token is never shown)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print exactly one JSON document (JSON lines for fan-outs and watches), no progress",
    )


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str, **kw: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=help,
        description=kw.get("description", help),
        formatter_class=_Formatter,
        epilog=kw.get("epilog"),
    )
    _common(parser, top=False)
    return parser


def _inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-i",
        "--input",
        dest="inputs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=INPUTS_HELP,
    )
    parser.add_argument(
        "pairs",
        nargs="*",
        metavar="KEY=VALUE",
        help="inputs may also be given bare, as key=value words",
    )


def _limit(parser: argparse.ArgumentParser, default: int = 20) -> None:
    parser.add_argument(
        "--limit", type=int, default=default, help=f"at most this many (default {default})"
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="replicate-async",
        description="Replicate from a terminal or a shell script: run models, stream them, "
        "fan out a file of inputs, manage predictions, files, models, deployments and "
        "trainings.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(
        sub,
        "run",
        "run a model and print its output",
        description="Run a model once (inputs from -i), or once per line of --input-file "
        "(a fan-out at the create limit, results as they finish).",
        epilog="examples:\n  replicate-async run emulator/echo -i text=hello\n"
        "  replicate-async run stability-ai/sdxl -i prompt='a corgi' --output-dir out/\n"
        "  replicate-async run owner/name --input-file inputs.jsonl --json > results.jsonl",
    )
    run.add_argument("model", help="owner/name, owner/name:version or a version id")
    _inputs(run)
    run.add_argument(
        "--input-file",
        metavar="FILE",
        help="JSON lines, one input object a line: run them all (a fan-out)",
    )
    run.add_argument(
        "--output-dir",
        metavar="DIR",
        help="save file outputs here (printed as paths instead of URLs)",
    )
    run.add_argument(
        "--wait",
        dest="wait",
        action="store_true",
        default=True,
        help="wait for the output (the default)",
    )
    run.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="print the prediction as soon as it is created, and exit",
    )
    run.add_argument(
        "--order",
        choices=["completion", "input"],
        default="completion",
        help="fan-out results in the order they finish (default) or of the input lines",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=50,
        help="fan-out: predictions in flight at once (default 50)",
    )
    run.add_argument(
        "--journal",
        metavar="FILE",
        help="fan-out: a journal that makes the run restartable (run it again "
        "after a crash: nothing is created twice)",
    )

    stream = _command(
        sub,
        "stream",
        "run a model and print its output as it is made",
        epilog="example:\n  replicate-async stream meta/meta-llama-3-8b-instruct "
        "-i prompt='Tell me a story'",
    )
    stream.add_argument("model", help="owner/name, owner/name:version or a version id")
    _inputs(stream)

    preds = _command(sub, "predictions", "get, list, cancel, wait for or watch predictions")
    psub = preds.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("get", "one prediction"),
        ("cancel", "cancel a prediction"),
        ("wait", "wait for a prediction to end"),
        ("watch", "print each new state of a prediction until it ends"),
    ):
        action = _command(psub, name, text)
        action.add_argument("id", help="the prediction's id")
    plist = _command(psub, "list", "your predictions, newest first")
    _limit(plist)

    files = _command(sub, "files", "upload, list, get, delete or download files")
    fsub = files.add_subparsers(dest="action", required=True, metavar="ACTION")
    upload = _command(fsub, "upload", "upload a file (up to 100 MB)")
    upload.add_argument("path", help="the file to upload")
    _limit(_command(fsub, "list", "your files, newest first"))
    _command(fsub, "get", "one file's details").add_argument("id", help="the file's id")
    _command(fsub, "delete", "delete a file").add_argument("id", help="the file's id")
    download = _command(fsub, "download", "download a file or any output URL to disk")
    download.add_argument("url", help="a signed /files/{id}/download URL or an output URL")
    download.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="where to save it (default: its name, in this directory)",
    )

    models = _command(sub, "models", "get, list, search models, their versions and inputs")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(msub, "get", "one model").add_argument("model", help="owner/name")
    _limit(_command(msub, "list", "public models"))
    search = _command(msub, "search", "search models")
    search.add_argument("query", help="what to look for (words, as on replicate.com)")
    _limit(search, 10)
    versions = _command(msub, "versions", "a model's versions, newest first")
    versions.add_argument("model", help="owner/name")
    _limit(versions)
    signature = _command(
        msub, "signature", "a model's inputs (types, defaults, what each is for) and output"
    )
    signature.add_argument("model", help="owner/name or owner/name:version")

    deps = _command(sub, "deployments", "list or get deployments")
    dsub = deps.add_subparsers(dest="action", required=True, metavar="ACTION")
    _limit(_command(dsub, "list", "your deployments"))
    _command(dsub, "get", "one deployment").add_argument("deployment", help="owner/name")

    trains = _command(sub, "trainings", "get, list or cancel trainings")
    tsub = trains.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(tsub, "get", "one training").add_argument("id", help="the training's id")
    _limit(_command(tsub, "list", "your trainings, newest first"))
    _command(tsub, "cancel", "cancel a training").add_argument("id", help="the training's id")

    _command(sub, "hardware", "the hardware models can run on")
    _command(sub, "account", "the account the token belongs to")

    hooks = _command(sub, "webhooks", "the webhook signing secret; check a delivery")
    hsub = hooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(hsub, "secret", "the account's webhook signing secret (whsec_...)")
    verify = _command(
        hsub,
        "verify",
        "check a delivery's signature and age",
        description="Check a webhook delivery: exit 0 if it is signed with the secret and "
        "recent, 1 if not.",
    )
    verify.add_argument("--secret", required=True, help="the whsec_... signing secret")
    verify.add_argument(
        "--headers",
        required=True,
        metavar="FILE",
        help="the delivery's headers: a JSON object, or 'Name: value' lines",
    )
    verify.add_argument(
        "--body", required=True, metavar="FILE", help="the delivery's raw body, byte for byte"
    )
    verify.add_argument(
        "--tolerance",
        type=float,
        default=300,
        help="the oldest timestamp accepted, in seconds (default 300)",
    )

    demo = _command(sub, "demo", "see the library at work against the built-in emulator")
    demo.add_argument("--out", help="directory for the demo's output file (default: a temp dir)")
    emulator = _command(
        sub,
        "emulator",
        "serve an emulator of the API in the foreground (for tests in any language)",
        description="Start the emulator and print its URL and token; Ctrl-C stops it. The "
        "options after 'emulator' are those of python -m replicate_async.testing "
        "(--port, --json, --models, --deployment, --tls ...).",
    )
    emulator.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="options for the emulator (see python -m replicate_async.testing --help)",
    )
    return parser
