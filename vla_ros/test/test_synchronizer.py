"""The rig synchroniser core: matching, deadline, rate, time jumps, bounded memory."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_perception.health import Health
from vla_perception.synchronizer import (
    MIN_SPACING_OF_PERIOD,
    RigSynchronizer,
    SyncConfig,
    to_ns,
)

MS = 1_000_000
CAMERAS = ('front', 'left', 'right')


def make(**overrides) -> RigSynchronizer:
    return RigSynchronizer(SyncConfig(camera_names=CAMERAS, **overrides))


def feed_round(sync: RigSynchronizer, stamp_ms: float, cameras=CAMERAS, delay_ms: float = 5.0):
    """Add one sample per camera (stamps 1 ms apart), stepping after each; return the frames."""
    frames = []
    for index, name in enumerate(cameras):
        stamp = round((stamp_ms + index) * MS)
        receive = stamp + round(delay_ms * MS)
        sync.add(name, stamp, receive, f'{name}@{stamp_ms}')
        frames.append(sync.step(receive))
    return [frame for frame in frames if frame is not None]


def health(frame) -> dict[str, Health]:
    return {camera.name: camera.health for camera in frame.cameras}


def test_complete_set_is_emitted_when_the_last_camera_arrives():
    sync = make()
    frames = feed_round(sync, 1000.0)
    assert len(frames) == 1
    frame = frames[0]
    assert frame.complete and frame.sequence == 0 and frame.epoch == 0
    assert frame.stamp_ns == 1002 * MS  # the newest stamp of the set
    assert [c.skew_ns for c in frame.cameras] == [-2 * MS, -1 * MS, 0]
    assert [c.sample.payload for c in frame.cameras] == [f'{n}@1000.0' for n in CAMERAS]


def test_dead_camera_is_marked_at_the_deadline_then_not_waited_for():
    sync = make(deadline_s=0.1, stale_timeout_s=0.3)
    assert len(feed_round(sync, 0.0)) == 1
    assert feed_round(sync, 100.0, cameras=('front', 'left')) == []  # waits for 'right'
    assert sync.step(round(198 * MS)) is None
    frame = sync.step(round(206 * MS))  # the oldest waiting sample arrived at 105 ms
    assert frame is not None and not frame.complete
    assert health(frame) == {'front': Health.OK, 'left': Health.OK, 'right': Health.STALE}
    assert frame.cameras[2].skew_ns == (2 - 101) * MS
    for stamp_ms in (200.0, 300.0, 400.0):  # 'right' goes stale, then is no longer waited for
        sync.step(round((stamp_ms + 110) * MS))
        feed_round(sync, stamp_ms, cameras=('front', 'left'))
    frames = feed_round(sync, 500.0, cameras=('front', 'left'))
    assert len(frames) == 1, 'a camera dead for longer than the stale timeout must not be awaited'
    assert health(frames[0])['right'] == Health.MISSING
    assert frames[0].cameras[2].sample is None


def test_at_the_deadline_the_most_complete_set_is_emitted_not_a_newer_partial_one():
    sync = make(deadline_s=0.1, stale_timeout_s=1.0)
    assert len(feed_round(sync, 0.0)) == 1
    assert feed_round(sync, 100.0, cameras=('front', 'left')) == []  # 'right' is lost
    # The next round has begun when the deadline of round 100 (arrived at 105 ms) expires.
    (frame,) = feed_round(sync, 200.0, cameras=('front',))
    assert frame.stamp_ns == 101 * MS
    assert health(frame) == {'front': Health.OK, 'left': Health.OK, 'right': Health.STALE}


def test_frames_never_come_faster_than_the_rate():
    sync = make(rate_hz=10.0)
    stamps = [f.stamp_ns for k in range(30) for f in feed_round(sync, k * 1000 / 30)]
    spacings = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(spacings) >= MIN_SPACING_OF_PERIOD * 100 * MS
    assert 9 <= len(stamps) <= 11  # one second of 30 Hz cameras, about 10 frames


def test_samples_beyond_the_skew_are_not_matched():
    sync = make(max_skew_s=0.02, deadline_s=0.05)
    sync.add('front', 0, 1 * MS, 'f')
    sync.add('left', 30 * MS, 31 * MS, 'l')  # 30 ms apart: no set within 20 ms
    sync.add('right', 30 * MS, 31 * MS, 'r')
    frame = sync.step(31 * MS)
    assert frame is None or health(frame)['front'] != Health.OK
    frame = frame or sync.step(60 * MS)
    assert frame is not None
    assert all(abs(c.skew_ns) <= 20 * MS for c in frame.cameras if c.health == Health.OK)


def test_backward_stamp_jump_resets_and_starts_a_new_epoch():
    sync = make(time_jump_s=0.5)
    feed_round(sync, 10_000.0)
    frames = feed_round(sync, 0.0)  # a bag loop: 10 s back
    assert sync.counters.resets == 1
    assert frames and frames[0].epoch == 1 and frames[0].complete


def test_backward_clock_resets():
    sync = make(time_jump_s=0.5)
    feed_round(sync, 10_000.0)
    assert sync.step(0) is None
    assert sync.counters.resets == 1 and sync.epoch == 1


def test_out_of_order_and_late_samples_are_dropped_and_counted():
    sync = make()
    feed_round(sync, 1000.0)
    assert not sync.add('front', 1000 * MS, 1100 * MS, 'again')  # not newer than its newest
    assert not sync.add('left', 900 * MS, 1100 * MS, 'old')
    counters = sync.counters.cameras
    assert counters['front'].out_of_order == 1 and counters['left'].out_of_order == 1
    assert sync.counters.resets == 0


def test_rejected_newest_message_marks_the_camera_invalid():
    sync = make(deadline_s=0.05)
    feed_round(sync, 0.0)
    sync.reject('left', 101 * MS)
    feed_round(sync, 100.0, cameras=('front', 'right'))
    frame = sync.step(200 * MS)
    assert frame is not None and health(frame)['left'] == Health.INVALID
    assert sync.counters.cameras['left'].rejected == 1


def test_flooding_camera_is_bounded_and_counted():
    sync = make(queue_size=4)
    for k in range(1000):
        sync.add('front', k * MS, k * MS, k)
    assert sync.queued()['front'] == 4
    assert sync.counters.cameras['front'].overflow == 996


@pytest.mark.parametrize(
    ('overrides', 'message'),
    [
        ({'camera_names': ()}, 'camera_names must be non-empty'),
        ({'camera_names': ('a', 'a')}, 'unique'),
        ({'rate_hz': 0.0}, 'rate_hz must be > 0'),
        ({'max_skew_s': float('nan')}, 'max_skew_s must be > 0'),
        ({'queue_size': 0}, 'queue_size must be >= 1'),
    ],
)
def test_bad_config_is_refused_with_the_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        SyncConfig(**{'camera_names': CAMERAS, **overrides})


def test_unknown_camera_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown camera 'rear'; the rig has front, left, right"):
        make().add('rear', 0, 0, None)


# Property tests: arbitrary input, including reordering, duplicates and time jumps.

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(['add', 'add', 'add', 'step', 'reject']),
        st.integers(0, len(CAMERAS) - 1),
        st.integers(-2000, 300),  # stamp change, ms: mostly forward, sometimes far back
        st.integers(0, 150),  # clock advance, ms
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(events=EVENTS, max_skew_ms=st.integers(1, 100), queue_size=st.integers(1, 10))
def test_property_ok_skew_bounded_frames_ordered_memory_bounded(events, max_skew_ms, queue_size):
    config = SyncConfig(CAMERAS, max_skew_s=max_skew_ms / 1000, queue_size=queue_size)
    sync = RigSynchronizer(config)
    now, stamp, last = 0, 0, None
    for kind, camera, stamp_change, advance in events:
        now += advance * MS
        stamp = max(0, stamp + stamp_change * MS)
        if kind == 'add':
            sync.add(CAMERAS[camera], stamp, now, None)
        elif kind == 'reject':
            sync.reject(CAMERAS[camera], now)
        frame = sync.step(now)
        assert all(size <= queue_size for size in sync.queued().values())
        if frame is None:
            continue
        for match in frame.cameras:
            if match.health == Health.OK:
                assert abs(match.skew_ns) <= to_ns(config.max_skew_s)
            elif match.health == Health.STALE:
                assert abs(match.skew_ns) <= to_ns(config.stale_timeout_s)
            else:
                assert match.sample is None
        if last is not None and last.epoch == frame.epoch:
            assert frame.stamp_ns - last.stamp_ns >= to_ns(MIN_SPACING_OF_PERIOD / config.rate_hz)
        if last is not None:
            assert frame.sequence == last.sequence + 1 and frame.epoch >= last.epoch
        last = frame


@settings(max_examples=100, deadline=None)
@given(
    periods_ms=st.lists(st.integers(30, 200), min_size=len(CAMERAS), max_size=len(CAMERAS)),
    deaths_ms=st.lists(st.integers(0, 3000), min_size=len(CAMERAS), max_size=len(CAMERAS)),
    jitter_ms=st.integers(0, 20),
    deadline_ms=st.integers(20, 300),
    seed=st.integers(0, 2**16),
)
def test_property_a_frame_is_emitted_by_every_deadline(
    periods_ms, deaths_ms, jitter_ms, deadline_ms, seed
):
    """Whenever a sample that may stamp a frame has waited a deadline, the step emits one."""
    rng = random.Random(seed)
    deaths_ms[0] = 10_000  # at least one camera lives throughout
    config = SyncConfig(CAMERAS, deadline_s=deadline_ms / 1000)
    sync = RigSynchronizer(config)
    min_spacing = to_ns(MIN_SPACING_OF_PERIOD / config.rate_hz)
    arrivals = sorted(
        (k * period + rng.randint(0, jitter_ms) + 3, index, k * period)
        for index, (period, death) in enumerate(zip(periods_ms, deaths_ms, strict=True))
        for k in range(3000 // period)
        if k * period < death
    )
    accepted, last_frame, emitted = [], None, 0
    for now_ms in range(0, 3200, 5):
        while arrivals and arrivals[0][0] <= now_ms:
            receive_ms, index, stamp_ms = arrivals.pop(0)
            if sync.add(CAMERAS[index], stamp_ms * MS, receive_ms * MS, None):
                accepted.append((stamp_ms * MS, receive_ms * MS))
        overdue = [
            receive
            for stamp, receive in accepted
            if (last_frame is None or stamp - last_frame >= min_spacing)
            and now_ms * MS - receive >= to_ns(config.deadline_s)
        ]
        frame = sync.step(now_ms * MS)
        if overdue:
            assert frame is not None, f'a sample waited past the deadline at {now_ms} ms'
        if frame is not None:
            last_frame = frame.stamp_ns
            accepted = [(s, r) for s, r in accepted if s > last_frame]
            emitted += 1
    assert emitted > 0
