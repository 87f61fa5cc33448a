"""Oracle network outputs: PanopticFCN outputs built from a ground-truth panoptic map (a test helper of the
post-processing, loss and model tests; the library's val --oracle does not use it: PanopticFCN has no oracle_keys).

`oracle_outputs` writes the outputs a perfect network would give, so that the post-processing
(candidates, kernel fusion, mask rescoring, upsampling, combine) can be checked end to end:
fed to `PanopticFCNPostprocess`, they must give the ground truth back (PQ 100).

Construction, for a ground truth of H x W pixels:

- the outputs are those of a network input of 4H x 4W (`upscale` 4), so that the stride-4 encoded
  features have one cell per ground-truth pixel: masks are exact at the original size (a x4
  bilinear upsampling, then the x1/4 resize back to H x W, thresholded at 0.4, reproduces a
  binary map exactly: each output pixel reads >= 0.766 of its own value);
- encoded features: one channel per ground-truth segment (one-hot of the pixel's segment), one for
  void, and a constant channel of ones;
- thing kernel of instance i: 2L on its channel, -L on the ones channel: mask logit +L inside the
  instance, -L outside; two instances' kernels have cosine similarity 0.2 (never fused);
- thing centres: logit +L at the instance's mass centre on P3 (``floor(centre * h_P3 / H)``), -L
  elsewhere and on the other levels; the thing kernel map holds the kernel at that position;
- stuff: on P3, the first S' pixels (raster order) take stuff channels 0..S'-1, all others channel 0;
  the stuff kernel map is scaled so that each channel's region average is its kernel (2L on the
  channels of its segments, -L on the ones channel; channel 0 collects every thing segment,
  crowd ones included, and the void pixels); other levels score sigmoid(-L) and are dropped.

Void pixels get -L from every thing kernel and +L only from stuff channel 0, which names no class:
they stay void. Instances whose centres fall on the same P3
position (mass centres closer than 2 pixels) cannot be represented: `UserInputError`.
"""
import numpy as np
import paddle

from paddleseg_ext.models.panoptic_fcn.targets import DEFAULT_STRIDES as STRIDES
from paddleseg_ext.models.panoptic_fcn.targets import feature_size, mass_centers
from paddleseg_ext.transforms.target_generator import segment_index_map
from paddleseg_ext.utils import UserInputError


def oracle_outputs(segment_ids, segments_info, layout, logit=20.0, upscale=4):
    """Outputs list (as `PanopticFCN.forward`, batch 1), valid_hw and ori_hw for a ground truth.

    Args:
        segment_ids: [H, W] int segment ids (0 / unknown = void).
        segments_info: the json segments (``id``, ``category_id`` train id, ``iscrowd``).
        layout (ClassLayout): the model's class layout.
        logit (float): L, the magnitude of the logits.
    Returns:
        (outputs: list of paddle float32 tensors, valid_hw int64 [2], ori_hw int64 [2]).
    """
    seg = np.asarray(segment_ids)
    h, w = seg.shape
    big_h, big_w = h * upscale, w * upscale
    k = len(segments_info)
    ids = np.array([int(s["id"]) for s in segments_info], dtype=np.int64)
    cats = np.array([int(s["category_id"]) for s in segments_info], dtype=np.int64)
    crowd = np.array([bool(s.get("iscrowd", 0)) for s in segments_info], dtype=bool)
    sidx = segment_index_map(seg, ids)  # k = void
    e = k + 2  # segments, void, ones
    encode = np.zeros((e, h, w), np.float32)
    encode[sidx, np.arange(h)[:, None], np.arange(w)[None, :]] = 1.0
    encode[e - 1] = 1.0

    area = np.bincount(sidx.ravel(), minlength=k + 1)[:k]
    is_thing = np.isin(cats, layout.thing_ids)
    inst = np.nonzero(is_thing & ~crowd & (area > 0))[0]
    sizes = [(feature_size(big_h, s), feature_size(big_w, s)) for s in STRIDES]
    t, s_ch = layout.num_things, layout.num_stuff_channels
    centers = [np.full((1, t, hl, wl), -logit, np.float32) for hl, wl in sizes]
    regions = [np.full((1, s_ch, hl, wl), -logit, np.float32) for hl, wl in sizes]
    things = [np.zeros((1, e, hl, wl), np.float32) for hl, wl in sizes]
    stuff = [np.zeros((1, e, hl, wl), np.float32) for hl, wl in sizes]

    h3, w3 = sizes[0]
    slot_lut = np.full(k + 1, inst.size, dtype=np.int64)
    slot_lut[inst] = np.arange(inst.size)
    c, _ = mass_centers(slot_lut[sidx], inst.size)  # [n, 2] (y, x) in ground-truth pixels
    py = np.floor(c[:, 0] * h3 / h).astype(np.int64)
    px = np.floor(c[:, 1] * w3 / w).astype(np.int64)
    pos, first, counts = np.unique(py * w3 + px, return_index=True, return_counts=True)
    if (counts > 1).any():
        clash = pos[counts > 1][0]
        raise UserInputError("oracle: segments {} have their centres on the same P3 position".format(
            ids[inst[(py * w3 + px) == clash]].tolist()))
    centers[0][0, layout.thing_channel_of_class[cats[inst]], py, px] = logit
    things[0][0, inst, py, px] = 2 * logit
    things[0][0, e - 1, py, px] = -logit

    if h3 * w3 < s_ch:
        raise UserInputError("oracle: P3 ({}x{}) has fewer pixels than the {} stuff channels".format(h3, w3, s_ch))
    channel = np.zeros(h3 * w3, np.int64)
    channel[:s_ch] = np.arange(s_ch)
    regions[0][0] = -logit
    regions[0][0, channel, np.arange(h3 * w3) // w3, np.arange(h3 * w3) % w3] = logit
    seg_channel = layout.stuff_channel_of_class[layout.lut_index(cats)]  # [k]
    kernels = np.full((s_ch, e), 0.0, np.float32)
    kernels[seg_channel[seg_channel < s_ch], np.nonzero(seg_channel < s_ch)[0]] = 2 * logit
    kernels[:, e - 1] = -logit
    # void pixels belong to channel 0 ("things") and no thing covers them: they stay void. Without it every
    # stuff mask is -L there and the combine step gives them the stuff class with the best score.
    kernels[0, k] = 2 * logit
    count = np.bincount(channel, minlength=s_ch).astype(np.float32)
    per_pixel = kernels[channel] * (h3 * w3 / count[channel])[:, None]  # [hw, e]
    stuff[0][0] = per_pixel.T.reshape(e, h3, w3)

    outs = centers + regions + things + stuff + [encode[None], np.zeros((1, e), np.float32)]
    return ([paddle.to_tensor(o) for o in outs], paddle.to_tensor([big_h, big_w], dtype="int64"),
            paddle.to_tensor([h, w], dtype="int64"))
