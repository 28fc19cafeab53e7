-- The billing run takes the subscriptions due at one instant a batch at a
-- time, in the order they were made: with the order in the index, a batch
-- reads its rows and no more (not every subscription due at that instant).
DROP INDEX subscriptions_due;
CREATE INDEX subscriptions_due ON subscriptions (next_due_at, pk);
