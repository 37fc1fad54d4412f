"""Stage 3, unlearning: the losses, SURE, the loop, the precision stacks, and one job in one process or sharded
across torchrun's processes."""
