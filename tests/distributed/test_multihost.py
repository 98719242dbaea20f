"""Two "hosts" on one machine: Linux network namespaces joined by a veth pair.

Each namespace is a host with its own network stack (its own 10.x address, no route to the
other's loopback), so the ranks talk over the veth link as over a wire. ``mpiexec`` runs in
host A with a hostfile naming both addresses; MPICH's Hydra starts the proxy of host B
through a bootstrap wrapper (``-launcher ssh -launcher-exec WRAPPER``) that enters B's
namespace where ssh would log in to B. The wrapper also gives each host its own working
folder and data folder, so nothing relies on a shared disk by accident: only rank 0's host
holds the run folder.

Needs root, ``ip`` (iproute2) and MPICH's ``mpiexec`` (Hydra's options start host B);
skipped otherwise. The namespaces are removed afterwards,
also when the test fails (the fixture's finaliser).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minigrad.checkpoint import load_checkpoint
from tests.distributed.conftest import ROOT, mpi_flavor, mpiexec_path
from tests.distributed.test_train_cli import APP

WRAPPER = """\
#!/bin/sh
# Hydra's ssh stand-in: [ssh options] HOST COMMAND... -> COMMAND inside HOST's namespace,
# in that host's own folder (ssh would log in to the other machine instead)
while [ "${{1#-}}" != "$1" ]; do shift; done
host=$1; shift
case $host in
{cases}
  *) echo "wrapper: unknown host $host" >&2; exit 255 ;;
esac
export I20_HOST_DIR="$dir" MINIGRAD_DATA="$dir/data"
exec ip netns exec "$ns" sh -c "cd '$dir' && exec $*"
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def two_hosts(tmp_path):
    """{address: (namespace, folder)} of two namespaces joined by a veth pair."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (apt-get install iproute2)")
    if mpi_flavor() != "mpich":  # the library's launcher passes --hostfile to Open MPI
        pytest.skip("the two hosts are started through MPICH's Hydra (-launcher-exec, "
                    f"host:ranks hostfile); {mpiexec_path()} is Open MPI's")  # fmt: skip
    tag = f"mg{os.getpid() % 100000}"
    octet = 16 + os.getpid() % 200  # 10.<octet>.0.0/24 inside the namespaces only
    hosts = {f"10.{octet}.0.1": (f"{tag}a", tmp_path / "hostA"),
             f"10.{octet}.0.2": (f"{tag}b", tmp_path / "hostB")}  # fmt: skip
    made = []
    try:
        for ns, folder in hosts.values():
            _ip("netns", "add", ns)
            made.append(ns)
            (folder / "data").mkdir(parents=True)
        (a, (na, _)), (b, (nb, _)) = hosts.items()
        _ip("link", "add", f"{tag}va", "type", "veth", "peer", "name", f"{tag}vb")
        for ns, dev, addr in ((na, f"{tag}va", a), (nb, f"{tag}vb", b)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as e:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        pytest.skip(f"cannot make network namespaces here: {e.stderr.decode().strip()}")
    try:
        yield hosts
    finally:  # deleting a namespace deletes its end of the veth pair, and so the pair
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _run_on_two_hosts(tmp_path, hosts, source: str) -> subprocess.CompletedProcess:
    cases = "\n".join(f"  {addr}) ns={ns}; dir={folder} ;;" for addr, (ns, folder) in hosts.items())
    wrapper = tmp_path / "enter-host.sh"
    wrapper.write_text(WRAPPER.format(cases=cases))
    wrapper.chmod(0o755)
    hostfile = tmp_path / "hosts"
    hostfile.write_text("".join(f"{addr}:1\n" for addr in hosts))
    script = tmp_path / "job.py"
    head = "import os, warnings\nwarnings.simplefilter('error')\n"
    head += "os.chdir(os.environ.get('I20_HOST_DIR', '.'))\n"  # host B: its own folder
    script.write_text(head + textwrap.dedent(source))
    first_ns, first_dir = next(iter(hosts.values()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIGRAD_DISABLE_CUPY": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    # mpiexec passes its environment to every rank, over what the wrapper sets: host B's
    # folder must not be in it (host A, mpiexec's own, runs in mpiexec's folder)
    env.pop("I20_HOST_DIR", None)
    launch = ["-launcher", "ssh", "-launcher-exec", str(wrapper)]  # ssh = the wrapper
    cmd = ["ip", "netns", "exec", first_ns, mpiexec_path(), "-f", str(hostfile), "-n", "2",
           *launch, sys.executable, str(script)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=first_dir, env=env)


def test_two_hosts_train_as_two_ranks_on_one_host(mpirun, two_hosts, tmp_path):
    job = APP + textwrap.dedent(
        """
        import socket
        from minigrad.train import data_parallel
        train("--epochs", "2", "--out", "run", "--sync-bn")
        train("--epochs", "3", "--resume", "run", "--sync-bn")  # only host A has the folder
        with open("/proc/self/net/dev") as f:  # this host's network devices
            devices = sorted(line.split(":")[0].strip() for line in f if ":" in line)
        line = (f"rank {data_parallel.join_world().rank} local {data_parallel.local_ranks()} in "
                f"{os.path.basename(os.getcwd())} devices {devices}\\n")
        sys.stdout.flush()
        os.write(1, line.encode())  # one write: the two ranks' lines cannot interleave
        """
    )
    two = _run_on_two_hosts(tmp_path, two_hosts, job)
    assert two.returncode == 0, two.stdout + two.stderr
    # two hosts of one rank each (MPI's node-local size is 1 on each)
    (na, host_a), (nb, host_b) = two_hosts.values()
    for rank, host, ns in ((0, host_a, na), (1, host_b, nb)):  # each in its own namespace
        assert f"rank {rank} local (0, 1) in {host.name} devices ['lo', '{ns[:-1]}v{ns[-1]}']" in (
            two.stdout
        ), two.stdout
    assert "cores / 1 rank on this machine)" in two.stdout  # all cores: one rank per host
    assert (host_a / "run" / "last.npz").exists() and not (host_b / "run").exists()
    one = mpirun(APP + "train('--epochs', '2', '--out', 'one', '--sync-bn')\n"
                 "train('--epochs', '3', '--resume', 'one', '--sync-bn')\n")  # fmt: skip
    assert one.returncode == 0, one.stderr
    got = load_checkpoint(host_a / "run" / "last.npz")
    want = load_checkpoint(tmp_path / "one" / "last.npz")
    for k in want["model"]:  # 2 ranks sum in the same order on a wire as in shared memory
        np.testing.assert_array_equal(got["model"][k], want["model"][k], err_msg=k)
    assert [r["val_acc"] for r in got["metrics"]] == [r["val_acc"] for r in want["metrics"]]


def test_the_launcher_restarts_a_two_host_job_after_kill_9_on_host_b(mpirun, two_hosts, tmp_path):
    from tests.distributed.test_launcher import KILLED

    cases = "\n".join(f"  {a}) ns={ns}; dir={d} ;;" for a, (ns, d) in two_hosts.items())
    wrapper = tmp_path / "enter-host.sh"
    wrapper.write_text(WRAPPER.format(cases=cases))
    wrapper.chmod(0o755)
    hostfile = tmp_path / "hosts"
    hostfile.write_text("".join(f"{addr}:1\n" for addr in two_hosts))
    (first_ns, host_a), (_, host_b) = two_hosts.values()
    script = tmp_path / "job.py"  # rank 1 (host B) kills itself in epoch 2, first attempt
    script.write_text("import os\nos.chdir(os.environ.get('I20_HOST_DIR', '.'))\n" + KILLED)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIGRAD_DISABLE_CUPY": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("I20_HOST_DIR", None)
    extra = [f"--mpiexec-arg={a}" for a in ("-launcher", "ssh", "-launcher-exec", str(wrapper))]
    cmd = ["ip", "netns", "exec", first_ns, sys.executable, "-m", "minigrad.distributed.run",
           "-n", "2", "--max-restarts", "1", "--hostfile", str(hostfile), *extra,
           "--state-dir", str(host_a / "state"), str(script)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=host_a, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    b = list(two_hosts)[1]  # host B's address, as MPICH reports the killed process
    assert f"minigrad.distributed.run: rank 1 on {b} was killed by signal 9 (SIGKILL); " in (
        res.stderr
    )
    assert not (host_b / "run").exists()
    ref = mpirun(APP + "train('--epochs', '2', '--out', 'ref', '--sync-bn')\n")
    assert ref.returncode == 0, ref.stderr
    got = load_checkpoint(host_a / "run" / "last.npz")["model"]
    want = load_checkpoint(tmp_path / "ref" / "last.npz")["model"]
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
