"""aiokafka's wait before retrying a transaction the broker is still closing is ours to set."""
import inspect

from aiokafka.producer import sender

from shared import transactional


def test_a_transaction_begun_while_the_last_one_closes_is_retried_after_our_wait_not_aiokafkas():
    assert sender.BACKOFF_OVERRIDE == transactional.CONCURRENT_TRANSACTIONS_RETRY_SECONDS < 0.02
    # An aiokafka that stops reading the constant would silently bring back its 20 ms.
    assert "BACKOFF_OVERRIDE" in inspect.getsource(sender.AddPartitionsToTxnHandler.handle_response)
