"""The one writer of a user's debits: coupon commands against the spendable balance."""
