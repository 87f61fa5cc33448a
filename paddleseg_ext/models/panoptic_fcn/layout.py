"""Class layout of PanopticFCN's two position outputs, from a dataset's train ids.

The datasets label pixels with train ids ``0..num_classes-1`` and name the thing classes in
``thing_ids`` (Cityscapes: 11..18; COCO: 0..79). The network has

- a *thing* head with one channel per thing class: channel ``t`` is ``thing_ids[t]`` (sorted);
- a *stuff* head with, when `with_thing` (the original's STUFF.WITH_THING, default), channel 0 for
  "any thing" followed by one channel per stuff class in increasing train id (COCO: 1 + 53 = 54),
  or, without it, the stuff classes only.

`ClassLayout` holds the look-up tables between the two spaces (numpy int64).
"""
import numpy as np

from ...utils import UserInputError


class ClassLayout:
    """Look-up tables between train ids and the thing / stuff channels.

    Args:
        num_classes (int): number of train ids C.
        thing_ids (list[int]): thing classes, each in [0, C).
        with_thing (bool): the stuff head has a leading "things" channel.

    Attributes:
        thing_ids, stuff_ids: int64 arrays of the train ids of the thing / stuff channels.
        num_things, num_stuff_channels: channel counts T and S' (S' = S + with_thing).
        stuff_channel_of_class: [C + 1] int64, the stuff channel of each train id (thing classes ->
            0 with `with_thing`); the last entry, used for void / out-of-range ids, is S' (no channel).
        thing_channel_of_class: [C + 1] int64, thing channel of each train id, T for non-things.
        class_of_stuff_channel: [S'] int64, train id of each stuff channel (-1 for the "things" one).
    """

    def __init__(self, num_classes, thing_ids, with_thing=True):
        self.num_classes = int(num_classes)
        things = sorted({int(t) for t in thing_ids})
        bad = [t for t in things if not 0 <= t < self.num_classes]
        if bad:
            raise UserInputError("thing_ids {} are outside 0..{} (num_classes={})".format(
                bad, self.num_classes - 1, self.num_classes))
        self.with_thing = bool(with_thing)
        self.thing_ids = np.asarray(things, dtype=np.int64)
        self.stuff_ids = np.asarray([c for c in range(self.num_classes) if c not in set(things)], dtype=np.int64)
        self.num_things = int(self.thing_ids.size)
        self.num_stuff = int(self.stuff_ids.size)
        offset = 1 if self.with_thing else 0
        self.num_stuff_channels = self.num_stuff + offset
        if self.num_stuff_channels == 0:
            raise UserInputError("PanopticFCN needs at least one stuff channel (no stuff class and with_thing False)")

        c = self.num_classes
        self.stuff_channel_of_class = np.full(c + 1, self.num_stuff_channels, dtype=np.int64)
        self.stuff_channel_of_class[self.stuff_ids] = offset + np.arange(self.num_stuff)
        if self.with_thing:
            self.stuff_channel_of_class[self.thing_ids] = 0
        self.thing_channel_of_class = np.full(c + 1, self.num_things, dtype=np.int64)
        self.thing_channel_of_class[self.thing_ids] = np.arange(self.num_things)
        self.class_of_stuff_channel = np.concatenate(
            [np.full(offset, -1, dtype=np.int64), self.stuff_ids]).astype(np.int64)

    def lut_index(self, class_ids):
        """Train ids (any int array) -> indices into the [C + 1] tables (out-of-range -> C)."""
        ids = np.asarray(class_ids, dtype=np.int64)
        return np.where((ids >= 0) & (ids < self.num_classes), ids, self.num_classes)
