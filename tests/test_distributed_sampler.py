"""DistributedSampler (PyTorch's indices without torch), DataLoader(sampler=), and the
process-group errors that need no MPI job."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import flowgrad as fg
import flowgrad.distributed as dist
from flowgrad.data import DataLoader, DistributedSampler, TensorDataset
from flowgrad.data.sampler import torch_randperm


def shares(n, replicas, **kwargs):
    return [list(DistributedSampler(range(n), num_replicas=replicas, rank=r, **kwargs))
            for r in range(replicas)]


# -- hand-computed ---------------------------------------------------------------------------
def test_unshuffled_split_is_strided_and_padded_from_the_start():
    # 10 samples over 3 ranks: 4 each, padded with index 0 and 1 (total 12).
    assert shares(10, 3, shuffle=False) == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    assert [len(DistributedSampler(range(10), 3, r, shuffle=False)) for r in range(3)] == [4] * 3


def test_drop_last_drops_the_tail_instead():
    assert shares(10, 3, shuffle=False, drop_last=True) == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    # Divisible sizes are unaffected by drop_last.
    assert shares(6, 3, shuffle=False, drop_last=True) == shares(6, 3, shuffle=False)


def test_padding_longer_than_the_dataset_repeats_it_cyclically():
    # 2 samples over 5 ranks: order 0 1 | padded 0 1 0.
    assert shares(2, 5, shuffle=False) == [[0], [1], [0], [1], [0]]


def test_shuffled_shares_cover_the_dataset_disjointly():
    parts = shares(20, 4, seed=3)
    flat = sorted(i for part in parts for i in part)
    assert flat == list(range(20))
    perm = torch_randperm(20, 3).tolist()
    assert parts[1] == perm[1::4]


def test_set_epoch_changes_the_order_and_is_reproducible():
    s = DistributedSampler(range(50), num_replicas=2, rank=0, seed=7)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    assert first != second
    assert second == torch_randperm(50, 8).tolist()[0::2]
    s.set_epoch(0)
    assert list(s) == first


def test_randperm_small_cases_by_hand():
    # mt19937 seeded with 0: first words 2357136044, 2546248239, 3071714933 (reference
    # init_genrand); swaps i <-> i + word % (n - i).
    words = np.random.RandomState(0).randint(0, 2**32, size=3, dtype=np.uint32)
    assert words.tolist() == [2357136044, 2546248239, 3071714933]
    perm = [0, 1, 2, 3]
    for i, w in enumerate(words.tolist()):
        j = i + w % (4 - i)
        perm[i], perm[j] = perm[j], perm[i]
    assert torch_randperm(4, 0).tolist() == perm
    assert torch_randperm(0, 0).tolist() == [] and torch_randperm(1, 5).tolist() == [0]


def test_sampler_errors_are_clear():
    with pytest.raises(ValueError, match=r"Invalid rank 3, rank should be in .*\[0, 2\]"):
        DistributedSampler(range(5), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(range(5), num_replicas=0, rank=0)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(5))


# -- against PyTorch -------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 1001, 60000])
@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 + 5])
def test_randperm_matches_torch(n, seed):
    torch = pytest.importorskip("torch")
    g = torch.Generator()
    g.manual_seed(seed)
    assert torch_randperm(n, seed).tolist() == torch.randperm(n, generator=g).tolist()


@pytest.mark.parametrize("n,replicas", [(10, 3), (12, 4), (7, 2), (3, 5), (101, 8)])
@pytest.mark.parametrize("shuffle,drop_last", [(True, False), (True, True), (False, False),
                                               (False, True)])
def test_sampler_matches_torch(n, replicas, shuffle, drop_last):
    pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler

    for epoch in (0, 3):
        for rank in range(replicas):
            ours = DistributedSampler(range(n), replicas, rank, shuffle=shuffle, seed=11,
                                      drop_last=drop_last)
            theirs = TorchSampler(range(n), replicas, rank, shuffle=shuffle, seed=11,
                                  drop_last=drop_last)
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert list(ours) == list(theirs), (epoch, rank)
            assert len(ours) == len(theirs)


# -- DataLoader(sampler=) --------------------------------------------------------------------
def test_dataloader_follows_the_sampler_each_epoch():
    ds = TensorDataset(np.arange(10.0)[:, None], np.arange(10))
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, seed=4)
    loader = DataLoader(ds, batch_size=2, sampler=sampler)
    assert len(loader) == 3
    seen = np.concatenate([yb.numpy() for _, yb in loader])
    assert seen.tolist() == list(sampler)
    sampler.set_epoch(1)
    again = np.concatenate([yb.numpy() for _, yb in loader])
    assert again.tolist() == list(sampler) and again.tolist() != seen.tolist()


def test_dataloader_sampler_with_generic_dataset_and_drop_last():
    data = [np.array([float(i)]) for i in range(7)]
    loader = DataLoader(data, batch_size=2, sampler=[6, 5, 4, 3, 2], drop_last=True)
    assert [b.numpy().ravel().tolist() for b in loader] == [[6.0, 5.0], [4.0, 3.0]]


def test_dataloader_sampler_and_shuffle_exclude_each_other():
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader([1, 2], sampler=[0, 1], shuffle=True)
    with pytest.raises(TypeError, match="sampler needs __len__"):
        DataLoader([1, 2], sampler=iter([0, 1]))


# -- process group, without MPI --------------------------------------------------------------
@pytest.mark.parametrize("call", [dist.get_rank, dist.get_world_size, dist.barrier,
                                  lambda: dist.all_reduce(fg.ones(2)),
                                  lambda: dist.broadcast(fg.ones(2)),
                                  dist.destroy_process_group])
def test_collectives_before_init_raise(call):
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match=r"init_process_group\(\) first"):
        call()


def test_ddp_needs_a_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        fg.nn.parallel.DistributedDataParallel(fg.nn.Linear(2, 2))


def test_missing_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(RuntimeError, match=r"pip install 'flowgrad\[distributed\]'"):
        dist.init_process_group()
    assert not dist.is_initialized()


def test_only_the_mpi_backend():
    with pytest.raises(ValueError, match="'mpi' backend"):
        dist.init_process_group("nccl")


def test_launch_command_shares_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(dist, "_is_open_mpi", lambda exe: False)
    cmd, env = dist.mpiexec_command(2, ["python", "x.py"], mpiexec="/bin/mpiexec")
    assert cmd == ["/bin/mpiexec", "-n", "2", "python", "x.py"]
    assert env["OMP_NUM_THREADS"] == str(dist.blas_threads_share(2))
    monkeypatch.setattr(dist, "_is_open_mpi", lambda exe: True)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    cmd, env = dist.mpiexec_command(4, ["prog"], mpiexec="/usr/bin/mpirun")
    assert cmd == ["/usr/bin/mpirun", "-n", "4", "--oversubscribe", "prog"]
    assert env["OMP_NUM_THREADS"] == "3"


def test_launcher_detection_reads_the_environment(monkeypatch):
    for v in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
              "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK"):
        monkeypatch.delenv(v, raising=False)
    assert not dist.launched_by_mpi() and dist.launcher_rank() == 0
    monkeypatch.setenv("PMI_RANK", "3")  # MPICH's Hydra
    assert dist.launched_by_mpi() and dist.launcher_rank() == 3
    monkeypatch.delenv("PMI_RANK")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")  # Open MPI
    assert dist.launched_by_mpi() and dist.launcher_rank() == 1


def test_train_nproc_option(capsys):
    from flowgrad.cli import main
    from flowgrad.cli.train import _without_nproc

    assert _without_nproc(["train", "--nproc", "2", "-q", "--nproc=3", "--epochs", "1"]) == \
        ["train", "-q", "--epochs", "1"]
    assert main(["train", "--nproc", "0"]) == 2
    assert capsys.readouterr().err == "flowgrad train: error: --nproc must be at least 1, got 0\n"
