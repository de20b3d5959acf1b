"""The validation-only wordings (planted.UNSEEN_*) stay out of every training and held-out pool."""

from __future__ import annotations

import random

from training import phrasing, planted


def _pools() -> list[str]:
    pools = [planted.ADDRESSEES, planted.OVERRIDES, planted.ACTIONS, planted.PARAPHRASES, planted.LOOKALIKES]
    pools += [phrasing.MODEL_ACTIONS, phrasing.PERSON_ACTIONS, phrasing.SHARED_FRAMES, phrasing.ATTACK_FRAMES]
    return [text.lower() for pool in pools for text in pool]


def _core(template: str) -> str:
    """The longest stretch of a template without a slot, lower-cased."""
    return max(template.replace("{", "}").split("}")[::2], key=len).strip(" .,;:-").lower()


def test_no_unseen_frame_or_action_is_in_a_training_or_heldout_pool() -> None:
    pools = _pools()
    for template in planted.UNSEEN_FRAMES + planted.UNSEEN_ACTIONS:
        core = _core(template)
        assert len(core) > 12, template
        assert not [text for text in pools if core in text], template


def test_an_unseen_instruction_is_one_frame_around_one_action() -> None:
    rng = random.Random(5)
    for _ in range(50):
        text = planted.unseen(rng)
        frames = [f for f in planted.UNSEEN_FRAMES if _core(f) in text.lower()]
        actions = [a for a in planted.UNSEEN_ACTIONS if _core(a) in text.lower()]
        assert len(frames) == 1 and len(actions) == 1, text
        assert "{" not in text
