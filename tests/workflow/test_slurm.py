"""The workflow on a real Slurm: the repository's slurm profile, submitting with sbatch to a one-node cluster.

The fixture brings up munge, slurmctld and slurmd (Debian's slurm-wlm and munge, which .ci/run installs),
with no accounting database, as ../shared/reference/slurm.md describes. It needs root, and
/etc/slurm/slurm.conf must be its own: the job step's nested srun drops SLURM_CONF and reads only that path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.workflow.test_workflow import ROOT, SNAKEFILE, overlay, write_yaml

CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# one-node test cluster of lab4d-workflow's tests/workflow/test_slurm.py"
PORTS = (6817, 6818)  # slurmctld, slurmd
TOOLS = ("munge", "munged", "setpriv", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
# Checks every second instead of after 10 and 40 s; the plugin still adds 10 s per check that finds nothing new.
FAST_POLLING = ("--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1")

SLURM_CONF = """\
{marker}
ClusterName=lab4dtest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={state}/state
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/log/slurmctld.log
SlurmdLogFile={state}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
InactiveLimit=0
KillWait=5
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def is_ours(conf: Path) -> bool:
    """Whether ``conf`` is a symlink to a config this module wrote (left behind by a killed run, say)."""
    try:
        return conf.is_symlink() and conf.read_text().startswith(MARKER)
    except OSError:
        return False


def port_busy(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return True
    return False


def why_no_cluster() -> str | None:
    """Why this machine cannot host the test cluster, or None when it can."""
    if os.geteuid() != 0:
        return "needs root: slurmd launches jobs as root, and the config must be /etc/slurm/slurm.conf"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"not on PATH: {', '.join(missing)} (Debian: apt-get install slurm-wlm munge, as .ci/run does)"
    if (CONF.exists() or CONF.is_symlink()) and not is_ours(CONF):
        return f"{CONF} exists and is not this test's symlink: a real cluster's config is never replaced"
    busy = [port for port in PORTS if port_busy(port)]
    if busy:
        return f"port(s) {', '.join(map(str, busy))} in use: another slurmctld or slurmd is running"
    return None


def cluster_env() -> dict[str, str]:
    """This environment with the venv first on PATH, minus anything that could point at another cluster."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    env.pop("SNAKEMAKE_PROFILE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def munge_answers(env: dict[str, str]) -> bool:
    return subprocess.run(["munge", "-n"], env=env, capture_output=True).returncode == 0


def wait_for(condition, what: str, logs: list[Path], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log}\n{log.read_text()[-2000:]}" for log in logs if log.exists())
            pytest.fail(f"{what} not within {timeout} s\n{tails}")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The cluster's environment for subprocesses, once munged, slurmctld and slurmd are up and the node idle."""
    reason = why_no_cluster()
    if reason:
        pytest.skip(reason)
    env = cluster_env()
    state = tmp_path_factory.mktemp("slurm")
    for folder in ("state", "spool", "log"):
        (state / folder).mkdir()
    memory_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    conf = state / "slurm.conf"
    # slurmd drains a node that claims more memory than it finds, so claim a little less.
    conf.write_text(SLURM_CONF.format(marker=MARKER, state=state, cpus=os.cpu_count(), memory_mb=memory_mb * 9 // 10))
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.unlink(missing_ok=True)  # only ever our own leftover: why_no_cluster() checked
    CONF.symlink_to(conf)

    def start(name: str, *command: str) -> subprocess.Popen:
        # Its own session, so that a ^C of pytest reaches the daemon only through our teardown.
        with (state / "log" / f"{name}.out").open("w") as log:
            return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    daemons = []
    try:
        # A munged the machine already runs (a systemd service, say) serves us as well as our own would.
        if not munge_answers(env):
            run_munge = Path("/run/munge")
            run_munge.mkdir(mode=0o755, exist_ok=True)
            shutil.chown(run_munge, "munge", "munge")
            munged = shutil.which("munged")
            daemons.append(start("munged", "setpriv", "--reuid=munge", "--regid=munge", "--init-groups", munged, "-F"))
            wait_for(lambda: munge_answers(env), "munged answering", [state / "log" / "munged.out"])
        daemons.append(start("slurmctld", shutil.which("slurmctld"), "-D", "-i"))
        daemons.append(start("slurmd", shutil.which("slurmd"), "-D", "-N", "localhost"))

        def idle() -> bool:
            sinfo = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            return sinfo.stdout.strip() == "idle"

        logs = [state / "log" / f"{daemon}.{kind}" for daemon in ("slurmctld", "slurmd") for kind in ("out", "log")]
        wait_for(idle, "the node idle in sinfo", logs)
        yield env
    finally:
        # Jobs of a failed run would outlive slurmd (proctrack/linuxproc), so cancel them while it is up.
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True)
        for daemon in reversed(daemons):  # slurmd, slurmctld, then munged
            stop(daemon)
        if CONF.is_symlink() and CONF.readlink() == conf:
            CONF.unlink()


def run_snakemake(*args: str, workdir: Path, env: dict[str, str], timeout: float = 150) -> str:
    """Snakemake's output; it fails the test on a non-zero exit, or kills snakemake's whole process group
    after ``timeout`` s, since it can wait forever (ignoring SIGTERM) when it loses track of its Slurm jobs."""
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), *args, "--directory", str(workdir)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"snakemake still running after {timeout} s, killed:\n{output}")
    assert process.returncode == 0, output
    return output


def job_record(job_id: str, env: dict[str, str]) -> dict[str, str]:
    """slurmctld's record of a job (kept MinJobAge = 300 s after it ends) as {field: value}."""
    record = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id], env=env, capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", record))


def test_data_stage_on_slurm_matches_a_local_run(slurm, tmp_path):
    synthetic = {"num_videos": 1, "num_frames": 10, "resolution": 48, "train_res": 32, "prefixes": ["crop"]}
    write_yaml(tmp_path / "datasets" / "tiny.yaml", {"source": {"synthetic": synthetic}})
    config = overlay(tmp_path, ["tiny"], tmp_path / "datasets")
    # synthesize is a Slurm job, preview one of the Snakefile's local rules; neither asks for a GPU, which this
    # node has none of (the profile's train would be rejected here: gpu=1 becomes --gpus=1).
    targets = ["data/tiny/manifest.json", "results/tiny/data-preview.png"]
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"

    # targets first: --configfile takes several values and would swallow them
    executor = ("--workflow-profile", str(PROFILE), *FAST_POLLING)
    output = run_snakemake(*targets, *executor, "--configfile", str(config), workdir=on_slurm, env=slurm)
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output))
    assert len(submitted) == 1, output
    record = job_record(next(iter(submitted.values())), slurm)
    assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
    assert record["Comment"] == "rule_synthesize_wildcards_tiny", record
    # The profile's resources for the rule reached sbatch; its CPUs are the rule's threads.
    wanted = yaml.safe_load((PROFILE / "profile.yaml").read_text())["set-resources"]["synthesize"]
    hours, minutes = divmod(wanted["runtime"], 60)
    assert record["TimeLimit"] == f"{hours:02d}:{minutes:02d}:00", record
    assert record["MinMemoryNode"] == f"{wanted['mem_mb']}M" and record["NumCPUs"] == "1", record
    assert "localrule preview:" in output, output

    run_snakemake(*targets, "--cores", "1", "--configfile", str(config), workdir=local, env=slurm)

    def manifest(root: Path) -> dict:
        data = json.loads((root / targets[0]).read_text())
        data.pop("seconds")  # how long synthesis took
        return data

    assert manifest(on_slurm) == manifest(local)
    files = sorted(path.relative_to(local) for path in (local / "data" / "tiny").rglob("*") if path.is_file())
    assert files == sorted(
        path.relative_to(on_slurm) for path in (on_slurm / "data" / "tiny").rglob("*") if path.is_file()
    )
    for file in files:
        if file.suffix == ".npy":
            np.testing.assert_array_equal(np.load(on_slurm / file), np.load(local / file), err_msg=str(file))
        elif file.name != "manifest.json":
            assert (on_slurm / file).read_bytes() == (local / file).read_bytes(), file
    preview = [np.asarray(Image.open(root / targets[1])) for root in (on_slurm, local)]
    np.testing.assert_array_equal(*preview)
