import logging

from shared.logs import Repeats


def record(name: str, message: str, at: float) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": name, "msg": message, "levelno": logging.ERROR})
    made.created = at
    return made


def test_a_kafka_client_message_repeated_while_a_broker_is_away_is_logged_once_per_window_with_a_count():
    repeats = Repeats(every=10)
    said = [repeats.filter(record("aiokafka", "Unable connect to node 2", t)) for t in (0.0, 0.1, 0.2, 5.0)]
    later = record("aiokafka", "Unable connect to node 2", 10.5)

    assert said == [True, False, False, False]
    assert repeats.filter(later) and later.repeated == 3


def test_the_services_own_lines_are_never_held_back():
    repeats = Repeats(every=10)

    assert all(repeats.filter(record("points.validator", "points.event.validated", 0.0)) for _ in range(5))
