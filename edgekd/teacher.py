"""Teacher outputs, computed once per (teacher weights, data, requested features) and cached.

Training reads teacher logits/features by window index from a :class:`TeacherOutputs` that covers the
whole WindowSet, so the teacher never runs inside the training loop. Cache levels: in memory (this
process; keyed by a hash of the weights, of the windows and of the requested stage) and, when a
``cache_dir`` is given, on disk as ``teacher-<key>.safetensors`` (no pickle), shared between runs of a sweep.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgekd.atomic import atomic_path, write_error
from edgekd.bpm import N_CLASSES
from edgekd.checkpoint import load_model
from edgekd.errors import EdgekdError
from edgekd.losses import TeacherBatch
from edgekd.model import ResNet1D
from edgekd.windowset import WindowSet, windows_hash

_MEMORY: OrderedDict[str, TeacherOutputs] = OrderedDict()
_MEMORY_SIZE = 8
_BATCH = 1024


@dataclass
class TeacherOutputs:
    """Teacher outputs for every window of a WindowSet (row i = window i).

    ``logits`` [N, 180]; ``stage`` [N, C, L] = the output of block ``stage_index`` (None when no strategy
    needs it); ``pooled`` [N, C] = the embedding before the classifier (None when not needed).
    An ensemble holds the mean of its teachers' logits (equal to averaging tempered logits) and no features.
    """

    logits: torch.Tensor
    blocks: int
    in_channels: int
    stage_index: int | None = None
    stage: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    members: int = 1

    def batch(self, idx: torch.Tensor) -> TeacherBatch:
        """The outputs for windows ``idx`` (a tensor on the same device)."""
        return TeacherBatch(self.logits[idx], None if self.stage is None else self.stage[idx],
                            None if self.pooled is None else self.pooled[idx])

    def to(self, device: torch.device | str) -> TeacherOutputs:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TeacherOutputs(self.logits.to(device), self.blocks, self.in_channels, self.stage_index,
                              move(self.stage), move(self.pooled), self.members)


def weights_hash(model: ResNet1D) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def check_fits(model: ResNet1D, ws: WindowSet, source: str) -> None:
    """A teacher must see at least its input channels and predict the 180 HR classes."""
    if model.in_channels > ws.n_channels:
        raise EdgekdError(f"{source}: teacher expects {model.in_channels} input channels but the data have "
                          f"{ws.n_channels} ({', '.join(ws.channels)})")
    if model.n_classes != N_CLASSES:
        raise EdgekdError(f"{source}: teacher predicts {model.n_classes} classes, expected {N_CLASSES}")


def teacher_outputs(model: ResNet1D, ws: WindowSet, device: str | torch.device, *,
                    stage_index: int | None = None, pooled: bool = False,
                    cache_dir: str | Path | None = None) -> TeacherOutputs:
    """Run ``model`` (eval mode) over all of ``ws`` once; cached in memory and optionally on disk.

    The teacher sees ``ws.x[:, :model.in_channels]``. Returned tensors live on ``device``.
    """
    check_fits(model, ws, "teacher")
    key = f"{weights_hash(model)}-{windows_hash(ws)}-s{stage_index}-p{int(pooled)}"
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key].to(device)
    path = Path(cache_dir) / f"teacher-{key}.safetensors" if cache_dir is not None else None
    if path is not None and path.exists():
        out = _from_file(path, model)
    else:
        out = _compute(model, ws, torch.device(device), stage_index, pooled)
        if path is not None:
            _to_file(out, path)
    _MEMORY[key] = out
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)
    return out.to(device)


def load_teachers(paths: list[str], ws: WindowSet, device: str | torch.device, *,
                  stage_index: int | None = None, pooled: bool = False,
                  cache_dir: str | Path | None = None) -> TeacherOutputs:
    """Outputs of one teacher (a run or artifact folder), or the logit-averaged ensemble of several."""
    if not paths:
        raise EdgekdError("no teacher given")
    if len(paths) > 1 and (stage_index is not None or pooled):
        raise EdgekdError("feature strategies (feature, ppg-distill) need a single teacher, not an ensemble")
    outs = []
    for p in paths:
        model = load_model(p)
        check_fits(model, ws, str(p))  # here, so the message names the checkpoint
        outs.append(teacher_outputs(model, ws, device, stage_index=stage_index, pooled=pooled,
                                    cache_dir=cache_dir))
    return outs[0] if len(outs) == 1 else ensemble(outs)


def ensemble(outs: list[TeacherOutputs]) -> TeacherOutputs:
    """Mean logits of several teachers (softmax(mean(z)/T) = averaged tempered logits)."""
    logits = torch.stack([o.logits for o in outs]).mean(0)
    return TeacherOutputs(logits, max(o.blocks for o in outs), max(o.in_channels for o in outs),
                          members=len(outs))


@torch.no_grad()
def _compute(model: ResNet1D, ws: WindowSet, device: torch.device, stage_index: int | None,
             pooled: bool) -> TeacherOutputs:
    model = model.to(device).eval()
    x = torch.from_numpy(ws.x[:, :model.in_channels]).to(device)
    logits, stages, pools = [], [], []
    for start in range(0, len(ws), _BATCH):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            z, feats, emb = model.forward_features(x[start:start + _BATCH])
        logits.append(z.float())
        if stage_index is not None:
            stages.append(feats[stage_index].float())
        if pooled:
            pools.append(emb.float())
    return TeacherOutputs(
        torch.cat(logits), model.blocks, model.in_channels, stage_index,
        torch.cat(stages) if stages else None, torch.cat(pools) if pools else None)


def _to_file(out: TeacherOutputs, path: Path) -> None:
    tensors = {"logits": out.logits.cpu().contiguous()}
    if out.stage is not None:
        tensors["stage"] = out.stage.cpu().contiguous()
    if out.pooled is not None:
        tensors["pooled"] = out.pooled.cpu().contiguous()
    meta = {"stage_index": str(out.stage_index)}
    with atomic_path(path, suffix=".safetensors") as tmp:
        try:
            save_file(tensors, str(tmp), metadata=meta)
        except SafetensorError as exc:  # a full disk surfaces here, without an errno
            raise write_error(path, exc) from None


def _from_file(path: Path, model: ResNet1D) -> TeacherOutputs:
    try:
        t = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise EdgekdError(f"{path}: unreadable teacher cache ({exc}); delete it to recompute") from None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        stage_index = (fh.metadata() or {}).get("stage_index", "None")
    return TeacherOutputs(t["logits"], model.blocks, model.in_channels,
                          None if stage_index == "None" else int(stage_index), t.get("stage"), t.get("pooled"))
