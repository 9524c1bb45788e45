


def torchrun_two(script, payload: str, save_dir, *, cwd=None, timeout: float = 300):
    """Run ``script payload`` as 2 local processes under torchrun; the ``CompletedProcess``.

    One retry, with ``save_dir`` emptied, when a rank aborted with
    "terminate called without an active exception": gloo's threads were seen
    to abort a rank at interpreter shutdown on shared 2-core machines
    (rare, never reproduced alone). Any other failure is returned as is.
    """
    import logging
    import os
    import shutil
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script), payload]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(2):
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=timeout, check=False)
        if proc.returncode == 0 or b"terminate called without an active exception" not in proc.stderr:
            return proc
        logging.getLogger(__name__).warning("torchrun attempt %d: a rank aborted at shutdown; retrying", attempt + 1)
        shutil.rmtree(save_dir, ignore_errors=True)
    return proc

