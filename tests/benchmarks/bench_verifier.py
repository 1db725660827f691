"""Offline verification benchmark (a script, not a test).

    uv run python tests/benchmarks/bench_verifier.py [--rounds 7] [--clock cpu|wall] [--write-docs]

On one key and one typical activation token it measures, interleaved over several rounds
(in this thread's CPU time, unless ``--clock wall``):
verifications per second of ``Verifier.verify_activation``, of a bare
``Ed25519PublicKey.verify`` over the same signing input (the physical limit), and of PyJWT
``jwt.decode`` of the same token; the cold-start cost of ``import licentia_verifier`` against
importing cryptography's ed25519 module; and the token's size. It prints a markdown table
(medians) and with ``--write-docs`` replaces the "## Offline verification" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from licentia_verifier import Verifier, machine_fingerprint

from keys.crypto import (
    SigningKey,
    compute_kid,
    generate_private_key,
    raw_private_key,
    raw_public_key,
)
from keys.tokens import TokenSubject, issue_activation_token

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Offline verification"
ISSUER = "https://licensing.example.com"
PRODUCT = "acme-ide"


def typical_token() -> tuple[SigningKey, str, str]:
    key = generate_private_key()
    signer = SigningKey.from_raw(compute_kid(raw_public_key(key)), raw_private_key(key))
    try:
        fingerprint = machine_fingerprint(PRODUCT)
    except Exception:  # no machine id in this environment
        fingerprint = "x" * 43
    subject = TokenSubject(
        license_id=str(uuid.uuid4()),
        organization_id=str(uuid.uuid4()),
        product=PRODUCT,
        tier="pro",
        features={"sso": True, "seats": 25, "export": True},
        max_activations=3,
        license_expires_at=datetime.now(UTC) + timedelta(days=365),
    )
    token = issue_activation_token(
        signer,
        subject,
        issuer=ISSUER,
        activation_id=str(uuid.uuid4()),
        fingerprint=fingerprint,
        now=datetime.now(UTC),
        lease=timedelta(days=14),
    ).token
    return signer, token, fingerprint


# CPU time of this thread by default: on a shared machine, time spent waiting for a CPU is
# not the code's cost and only adds noise (``--clock wall`` measures elapsed time instead).
TIMER = time.thread_time


def batch_seconds(fn, number: int) -> float:
    return timeit.timeit(fn, number=number, timer=TIMER) / number


def throughput(fns: dict, rounds: int, batches: int = 40, batch_time: float = 0.02) -> dict:
    """Per-call seconds for each function, measured in many short interleaved batches.

    Each batch of every function runs back to back with the others, so a change in machine
    load hits all of them alike; ratios are taken per batch triple and the median is
    reported, which is robust on a shared or busy machine.
    """
    numbers = {name: max(1, int(batch_time / batch_seconds(fn, 50))) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for round_ in range(rounds):
        for i in range(batches):
            k = (round_ + i) % len(names)
            for name in names[k:] + names[:k]:  # rotate the order
                samples[name].append(batch_seconds(fns[name], numbers[name]))
    return samples


def cold_start(code: str, env: dict[str, str]) -> float:
    start = timeit.default_timer()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return timeit.default_timer() - start


def cold_starts(runs: int, bytecode: bool) -> dict[str, float]:
    """Median ms per case. ``bytecode``: with .pyc caches present (as after a normal
    install); otherwise every module is compiled from source (PYTHONDONTWRITEBYTECODE and
    an empty pycache prefix), which is what this repository's dev environment does."""
    import tempfile

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="licentia-bench-nopyc-")
    cases = {
        "pass": "pass",
        "ed": "from cryptography.hazmat.primitives.asymmetric import ed25519",
        "ours": "import licentia_verifier",
    }
    for code in cases.values():  # warm the OS file cache (and write .pyc files)
        cold_start(code, env)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):  # interleaved
        for name, code in cases.items():
            times[name].append(cold_start(code, env))
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--import-runs", type=int, default=30)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="throughput from this thread's CPU time (default) or from elapsed time",
    )
    args = parser.parse_args()
    global TIMER
    TIMER = time.thread_time if args.clock == "cpu" else time.perf_counter

    signer, token, fingerprint = typical_token()
    jwks = {"keys": [signer.public_jwk()]}
    verifier = Verifier.from_jwks(jwks, product=PRODUCT, issuer=ISSUER)
    public_key = jwt.PyJWK(jwks["keys"][0]).key
    signing_input, _, sig = token.rpartition(".")
    signing_bytes = signing_input.encode()
    signature = base64.urlsafe_b64decode(sig + "==")
    verifier.verify_activation(token, fingerprint=fingerprint)  # warm up and sanity check

    def ours() -> None:
        verifier.verify_activation(token, fingerprint=fingerprint)

    def bare() -> None:
        public_key.verify(signature, signing_bytes)

    def pyjwt() -> None:
        jwt.decode(token, public_key, algorithms=["EdDSA"], audience=PRODUCT, issuer=ISSUER)

    samples = throughput({"ours": ours, "bare": bare, "pyjwt": pyjwt}, args.rounds)
    med = {name: 1 / statistics.median(values) for name, values in samples.items()}
    pairs = list(zip(samples["ours"], samples["bare"], samples["pyjwt"], strict=True))
    ratio_bare = statistics.median(b / o for o, b, _ in pairs)
    ratio_pyjwt = statistics.median(p / o for o, _, p in pairs)
    ceiling = statistics.median(p / b for _, b, p in pairs)

    cmed = cold_starts(args.import_runs, bytecode=True)
    nopyc = cold_starts(args.import_runs, bytecode=False)

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    import cryptography

    machine = (
        f"{os.cpu_count()} CPUs (`nproc`), {cpu}; {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}; cryptography {cryptography.__version__}; "
        f"PyJWT {jwt.__version__}"
    )
    size = len(token)
    ratio_import = cmed["ours"] / cmed["ed"]
    ratio_nopyc = nopyc["ours"] / nopyc["ed"]
    us = {name: 1e6 / value for name, value in med.items()}
    verdict = {True: "met", False: "**not met**"}
    ok_import = verdict[ratio_import <= 1.2]
    rows = [
        ("`verify_activation`", f"{med['ours']:,.0f} /s ({us['ours']:.1f} µs)", "", ""),
        (
            "bare `Ed25519PublicKey.verify`, same input",
            f"{med['bare']:,.0f} /s ({us['bare']:.1f} µs)",
            "",
            "",
        ),
        (
            "PyJWT `jwt.decode`, same token",
            f"{med['pyjwt']:,.0f} /s ({us['pyjwt']:.1f} µs)",
            "",
            "",
        ),
        ("verifier vs bare verify", f"{ratio_bare:.3f}x", "≥ 0.9x", verdict[ratio_bare >= 0.9]),
        ("verifier vs PyJWT", f"{ratio_pyjwt:.2f}x", "≥ 1.5x", verdict[ratio_pyjwt >= 1.5]),
        ("ceiling: bare verify vs PyJWT", f"{ceiling:.2f}x", "", ""),
        ('cold `python -c "import licentia_verifier"`', f"{cmed['ours']:.1f} ms", "", ""),
        ('cold `python -c "from cryptography...import ed25519"`', f"{cmed['ed']:.1f} ms", "", ""),
        ("cold `python -c pass` (interpreter alone)", f"{cmed['pass']:.1f} ms", "", ""),
        ("import ratio (with .pyc, as installed)", f"{ratio_import:.3f}x", "≤ 1.2x", ok_import),
        (
            "import ratio, compiling from source (no .pyc)",
            f"{ratio_nopyc:.3f}x ({nopyc['ours']:.1f} / {nopyc['ed']:.1f} ms)",
            "",
            "",
        ),
        ("typical activation token", f"{size} bytes", "< 700", verdict[size < 700]),
    ]
    table = "| Measure | Result | Target | |\n|---|---|---|---|\n" + "".join(
        f"| {' | '.join(row)} |\n" for row in rows
    )
    header = (
        f"Machine: {machine}.\n\n"
        f"Throughput: {args.rounds} rounds of 40 interleaved ~20 ms batches per function, timed "
        f"in {'CPU time of the benchmark thread' if args.clock == 'cpu' else 'elapsed time'}; "
        "rates are medians over batches and ratios are medians of per-batch ratios (robust to "
        f"load changes). Cold start: median of {args.import_runs} interleaved runs. "
        "Produced by `uv run python tests/benchmarks/bench_verifier.py --write-docs`.\n"
    )
    print(header)
    print(table)
    if args.write_docs:
        write_section(header + "\n" + table)
    return 0


def write_section(body: str) -> None:
    notes_marker = "<!-- bench:notes -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    notes = ""
    if start == -1:
        before, after = text.rstrip("\n") + "\n\n", ""
    else:
        end = text.find("\n## ", start + len(SECTION))
        end = len(text) if end == -1 else end + 1
        old = text[start:end]
        if notes_marker in old:  # keep the hand-written analysis below the marker
            notes = old[old.index(notes_marker) :].rstrip("\n") + "\n"
        before, after = text[:start], text[end:]
    generated = f"{SECTION}\n\n{body}\n"
    section = generated + ("\n" + notes if notes else "")
    DOCS.write_text(before + section + ("\n" + after if after else ""))
    print(f"updated {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
