"""Model-side training targets and kernel selection (paddle, inside `PanopticFCN.loss`).

Everything here works on a whole batch with fixed shapes, no loop over images, instances or
pixels (a loop over the FPN levels is left to the caller). The inputs come from
`targets.PanopticFCNTargetGenerator`.

- `soft_masks4` / `stuff_soft4`: the stride-4 soft masks (instances) and soft one-hot stuff map
  (= the original's bilinear 1/4 resize of binary full-resolution maps), averaging the one-hot
  encodings of the four stored samples per stride-4 pixel.
- `level_stuff_targets`: a level's stuff focal target: the stride-4 soft map resized bilinearly,
  clamped to <= 1, values < 0.5 set to 0; a class is present at the level if any value is left.
- `select_thing_kernels`: the original's top-k "guided" positives: candidates are the level pixels
  where the bilinearly resized soft mask is > 0.1; their guidance is the predicted centre
  probability of the instance's class (0 elsewhere); the k best are gathered from the thing
  kernel map with their guidance as weights (not detached).
- `pool_stuff_kernels`: a stuff kernel per class and level = the average over the whole level map
  of (binary level target x stuff kernel map), as one [S, hw] x [hw, E] matmul per image.
- `compact`: moves the valid rows of [N, R, ...] tensors to the front, keeping Q = the largest
  number of valid rows of an image, so that masks are computed only for those.
"""
import paddle
import paddle.nn.functional as F


def _one_hot_mean(index4, num):
    """[N, 4, h, w] int64 -> [N, num, h, w] float32: mean over the 4 samples of (index == c)."""
    classes = paddle.arange(num, dtype="int64").reshape([1, num, 1, 1, 1])
    eq = (index4.unsqueeze(1) == classes).astype("float32")  # [N, num, 4, h, w]
    return eq.mean(axis=2)


def soft_masks4(instance4, num_slots):
    """Soft stride-4 masks of instance slots 0..num_slots-1: [N, num_slots, h4, w4] float32."""
    return _one_hot_mean(instance4.astype("int64"), num_slots)


def stuff_soft4(semantic4, channel_lut, num_channels):
    """Soft stride-4 one-hot of the stuff channels: [N, S', h4, w4] float32.

    semantic4: [N, 4, h4, w4] train ids; channel_lut: int64 tensor [C + 1] (train id -> stuff
    channel, see `layout.ClassLayout`); ids outside [0, C) use its last entry (no channel).
    """
    c = int(channel_lut.shape[0]) - 1
    ids = semantic4.astype("int64")
    inside = paddle.logical_and(ids >= 0, ids < c)
    ids = paddle.where(inside, ids, paddle.full_like(ids, c))
    ch = paddle.gather(channel_lut, ids.flatten()).reshape(ids.shape)
    return _one_hot_mean(ch, num_channels)


def level_stuff_targets(soft4, size):
    """Focal target of one level: [N, S', h, w] float32 (see module docstring)."""
    t = F.interpolate(soft4, size=size, mode="bilinear", align_corners=False)
    t = paddle.clip(t, max=1.0)
    return paddle.where(t < 0.5, paddle.zeros_like(t), t)


def _gather_rows(feat, index):
    """feat [N, E, h, w], index [N, R] int64 into h*w -> [N, R, E]."""
    shape = paddle.shape(feat)
    flat = feat.reshape([shape[0], shape[1], -1]).transpose([0, 2, 1])  # [N, hw, E]
    idx = index.unsqueeze(-1).expand([-1, -1, shape[1]])
    return paddle.take_along_axis(flat, idx, axis=1)


def select_thing_kernels(center_logit, kernel_map, masks4, channels, k):
    """Top-k guided positives of every instance slot at one level.

    Args:
        center_logit: [N, T, h, w] predicted centre logits of the level.
        kernel_map: [N, E, h, w] (embedded) thing kernel map of the level.
        masks4: [N, M, h4, w4] soft stride-4 masks; channels: [N, M] int64 thing channel.
        k (int): positives per instance (POS_NUM).
    Returns:
        kernels [N, M, k, E] and weights [N, M, k] (the guidance values; 0 for padding picks).
    """
    n, t, h, w = center_logit.shape[0], center_logit.shape[1], center_logit.shape[2], center_logit.shape[3]
    m = masks4.shape[1]
    guided = F.interpolate(masks4, size=[h, w], mode="bilinear", align_corners=False).reshape([n, m, h * w])
    prob = F.sigmoid(center_logit).reshape([n, t, h * w])
    chan = channels.astype("int64").unsqueeze(-1).expand([n, m, h * w])
    guidance = paddle.take_along_axis(prob, chan, axis=1)  # [N, M, hw]
    guidance = paddle.where(guided > 0.1, guidance, paddle.zeros_like(guidance))
    if h * w < k:  # tiny maps (e.g. P7 of a small image): pad with zero-guidance picks
        guidance = paddle.concat([guidance, paddle.zeros([n, m, k - h * w], dtype=guidance.dtype)], axis=-1)
    weights, index = paddle.topk(guidance, k, axis=-1)
    index = paddle.clip(index, max=h * w - 1)  # padding picks have weight 0
    kernels = _gather_rows(kernel_map, index.reshape([n, m * k]))
    return kernels.reshape([n, m, k, -1]), weights


def pool_stuff_kernels(binary, stuff_map):
    """Stuff kernels of one level: binary [N, S', h, w] x stuff_map [N, E, h, w] -> [N, S', E],
    the average over all h*w pixels of mask x map (adaptive average pooling of the product)."""
    n, s, h, w = binary.shape[0], binary.shape[1], binary.shape[2], binary.shape[3]
    e = stuff_map.shape[1]
    return paddle.matmul(binary.reshape([n, s, h * w]), stuff_map.reshape([n, e, h * w]), transpose_y=True) / float(h * w)


def compact(valid, tensors):
    """Keep the valid rows first (in their order) and drop columns no image needs.

    Args:
        valid: [N, R] float32 (0/1); tensors: list of [N, R, ...] tensors.
    Returns:
        (valid [N, Q], tensors [N, Q, ...], index [N, Q] int64), Q = max(1, max_n sum valid[n]):
        an eager-mode (training) helper, Q is read back as a Python int.
    """
    r = valid.shape[1]
    q = max(1, int(valid.sum(axis=1).max()))
    key = valid * float(r) + (float(r) - 1.0 - paddle.arange(r, dtype="float32")).unsqueeze(0)
    _, index = paddle.topk(key, q, axis=1)
    out = []
    for x in tensors:
        idx = index.reshape(index.shape + [1] * (x.ndim - 2)).expand(index.shape + x.shape[2:])
        out.append(paddle.take_along_axis(x, idx, axis=1))
    return paddle.take_along_axis(valid, index, axis=1), out, index
