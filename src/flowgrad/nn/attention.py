"""Multi-head attention, with PyTorch's parameters, names and numbers."""

from __future__ import annotations

import math
from typing import Any

from flowgrad import _backend
from flowgrad._backend import xp
from flowgrad.errors import ShapeError
from flowgrad.nn import functional as F
from flowgrad.nn import init
from flowgrad.nn.layers import Linear
from flowgrad.nn.module import Module, Parameter
from flowgrad.ops.reduction import softmax
from flowgrad.ops.shape import masked_fill
from flowgrad.tensor import Tensor


class MultiheadAttention(Module):
    """Multi-head attention as ``torch.nn.MultiheadAttention``, so weights copy across.

    Parameters: ``in_proj_weight`` (3·E, E) (query, key and value projections stacked, xavier
    uniform), ``in_proj_bias`` (3·E,) (zeros), and ``out_proj`` a :class:`Linear` (E, E) whose
    bias starts at zero. For each head h, with Dh = E / num_heads::

        Q, K, V = query @ Wqᵀ + bq, key @ Wkᵀ + bk, value @ Wvᵀ + bv
        A_h = softmax(Q_h @ K_hᵀ / √Dh + mask)          (dropout on A_h in training)
        output = concat_h(A_h @ V_h) @ Woᵀ + bo

    Note that ``batch_first`` defaults to True here (inputs (N, L, E)); PyTorch's default is
    False ((L, N, E)). Pass ``batch_first=False`` for PyTorch's layout.

    Args:
        embed_dim: E, the model width (divisible by ``num_heads``).
        num_heads: the number of heads.
        dropout: dropout probability on the attention weights (training only).
        bias: learn the projection biases.
        batch_first: inputs and outputs are (N, L, E) (default) rather than (L, N, E).

    Example:
        >>> import flowgrad as fg
        >>> mha = fg.nn.MultiheadAttention(8, 2)
        >>> x = fg.randn(3, 5, 8)
        >>> out, weights = mha(x, x, x)
        >>> out.shape, weights.shape
        ((3, 5, 8), (3, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = True):
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MultiheadAttention: {name} must be a positive int, got "
                                 f"{value!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim={embed_dim} must be divisible by "
                             f"num_heads={num_heads}")
        if add_bias_kv or add_zero_attn or kdim not in (None, embed_dim) or \
                vdim not in (None, embed_dim):
            raise NotImplementedError("MultiheadAttention: add_bias_kv, add_zero_attn and "
                                      "kdim/vdim other than embed_dim are not supported")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = F._check_p("MultiheadAttention", dropout)
        self.batch_first = batch_first
        dtype = _backend.default_float
        self.in_proj_weight = Parameter(xp.empty((3 * embed_dim, embed_dim), dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(xp.empty((3 * embed_dim,), dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True, is_causal: bool = False):
        """Attend from ``query`` to ``key``/``value``.

        Args:
            query, key, value: (N, L, E), (N, S, E), (N, S, E) with ``batch_first`` (else
                (L, N, E) ...), or unbatched (L, E), (S, E), (S, E).
            key_padding_mask: (N, S): True (or -inf) marks keys to ignore.
            need_weights: also return the attention weights.
            attn_mask: (L, S) or (N·num_heads, L, S): True marks pairs that may NOT attend
                (PyTorch's convention for this module); a float mask is added to the scores.
            average_attn_weights: average the returned weights over the heads.
            is_causal: a hint that ``attn_mask`` is the causal mask (it must be given).

        Returns:
            ``(output, weights)``: output shaped like ``query``; weights (N, L, S) (or
            (N, num_heads, L, S) without averaging), or None when ``need_weights`` is False.
        """
        if is_causal and attn_mask is None:
            raise RuntimeError("MultiheadAttention: need attn_mask if specifying the "
                               "is_causal hint")
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"MultiheadAttention: query, key and value must all be 3-D "
                             f"(batched) or 2-D (unbatched), got shapes {tuple(query.shape)}, "
                             f"{tuple(key.shape)}, {tuple(value.shape)}")
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        e, heads, dh = self.embed_dim, self.num_heads, self.head_dim
        if query.shape[-1] != e or key.shape[-1] != e or value.shape[-1] != e:
            raise ShapeError(f"MultiheadAttention: the last dim of query, key and value must be "
                             f"embed_dim={e}, got shapes {tuple(query.shape)}, "
                             f"{tuple(key.shape)}, {tuple(value.shape)}")
        if key.shape[:2] != value.shape[:2]:
            raise ShapeError(f"MultiheadAttention: key of shape {tuple(key.shape)} and value of "
                             f"shape {tuple(value.shape)} must have the same batch and length")
        n, length, source = query.shape[0], query.shape[1], key.shape[1]
        w, b = self.in_proj_weight, self.in_proj_bias
        bq = bk = bv = None
        if b is not None:
            bq, bk, bv = b[:e], b[e:2 * e], b[2 * e:]
        q = F.linear(query, w[:e], bq)
        k = F.linear(key, w[e:2 * e], bk)
        v = F.linear(value, w[2 * e:], bv)

        def split(t: Tensor, steps: int) -> Tensor:  # (N, T, E) -> (N, H, T, Dh)
            return t.reshape(n, steps, heads, dh).transpose(1, 2)

        q, k, v = split(q, length), split(k, source), split(v, source)
        scores = (q * math.sqrt(1.0 / dh)) @ k.mT  # (N, H, L, S), q scaled first as PyTorch
        scores = self._masked(scores, attn_mask, key_padding_mask, n, length, source)
        weights = softmax(scores, dim=-1)
        if self.training and self.dropout > 0.0:
            weights = F.dropout(weights, self.dropout, training=True)
        out = (weights @ v).transpose(1, 2).reshape(n, length, e)
        out = self.out_proj(out)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(dim=1)
        return out, (weights if batched else weights.squeeze(0))

    def _masked(self, scores: Tensor, attn_mask: Any, key_padding_mask: Any, n: int,
                length: int, source: int) -> Tensor:
        heads = self.num_heads
        if attn_mask is not None:
            mask = _mask_array(attn_mask, scores)
            if mask.shape == (length, source):
                mask = _reshape(mask, (1, 1, length, source))
            elif mask.shape == (n * heads, length, source):
                mask = _reshape(mask, (n, heads, length, source))
            else:
                raise ShapeError(f"MultiheadAttention: attn_mask must have shape ({length}, "
                                 f"{source}) or ({n * heads}, {length}, {source}), got "
                                 f"{tuple(mask.shape)}")
            scores = self._apply(scores, mask)
        if key_padding_mask is not None:
            mask = _mask_array(key_padding_mask, scores)
            if mask.shape != (n, source):
                raise ShapeError(f"MultiheadAttention: key_padding_mask must have shape ({n}, "
                                 f"{source}), got {tuple(mask.shape)}")
            scores = self._apply(scores, _reshape(mask, (n, 1, 1, source)))
        return scores

    @staticmethod
    def _apply(scores: Tensor, mask: Any) -> Tensor:
        if _backend.host_dtype(mask.dtype) == _backend.bool_:  # True: may not attend
            full = _backend.namespace(mask).broadcast_to(mask, scores.shape)
            return masked_fill(scores, Tensor._make(full, False, None), -math.inf)
        return scores + _backend.astype(mask, scores.dtype)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"


def _mask_array(mask: Any, like: Tensor) -> Any:
    """A mask (Tensor, array or nested list) as an array on ``like``'s device."""
    arr = mask.data if isinstance(mask, Tensor) else mask
    return _backend.asarray(arr, device=like.device)


def _reshape(arr: Any, shape: tuple) -> Any:
    return _backend.namespace(arr).reshape(arr, shape)
