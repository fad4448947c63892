"""Keys generated once into instance/ (SECRET_KEY, ENCRYPTION_KEY when unset): processes that
start together, as gunicorn's workers or several `flask worker`s do on a first start, must all end
up with the same, complete key."""

import multiprocessing
import stat

from webapp import generated_once

PROCESSES = 6
ROUNDS = 15


def _read_at_once(path, barrier, results, index):
    barrier.wait()
    results[index] = generated_once(path, lambda: f"key-from-{index}-" + "x" * 4000)


def test_processes_starting_together_share_one_complete_key(tmp_path):
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        path = tmp_path / f"round-{round_}" / "encryption_key"
        barrier = context.Barrier(PROCESSES)
        with context.Manager() as manager:
            results = manager.dict()
            workers = [
                context.Process(target=_read_at_once, args=(path, barrier, results, i)) for i in range(PROCESSES)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(30)
            assert [worker.exitcode for worker in workers] == [0] * PROCESSES
            values = set(results.values())
        assert len(values) == 1, f"round {round_}: {len(values)} different keys"
        (value,) = values
        assert value.startswith("key-from-") and value.endswith("x" * 4000)  # never a half-written file
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["encryption_key"]  # no temporary file left


def test_a_key_already_there_is_read_not_replaced(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("kept\n")
    assert generated_once(path, lambda: "new") == "kept"
