"""The offline drivers' timer on log time (vla_ros.log_timer), used by OfflineSync and replay."""

from vla_ros.log_timer import LogTimer


def test_the_first_tick_is_the_first_multiple_of_the_period_after_the_first_time_seen():
    timer = LogTimer(100)
    assert list(timer.due(250)) == []
    assert timer.next_tick_ns(10_000) == 300
    assert list(timer.due(520)) == [300, 400, 500]
    assert list(timer.due(520)) == []


def test_a_time_on_a_multiple_starts_the_timer_one_period_later_and_ticks_are_inclusive():
    timer = LogTimer(100)
    assert timer.next_tick_ns(200) == 300
    assert list(timer.due(300)) == [300]


def test_restart_moves_the_next_tick_one_period_after_a_cycle_out_of_turn():
    timer = LogTimer(100)
    assert list(timer.due(150)) == []
    timer.restart(170)
    assert list(timer.due(300)) == [270]
    assert timer.advance() == 370
    assert timer.next_tick_ns(0) == 470
