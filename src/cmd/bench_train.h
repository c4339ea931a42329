/* `mambadna bench train` (bench_train.c) and `bench attention`
 * (bench_attention.c), dispatched by cmd/bench.c. */
#ifndef MD_CMD_BENCH_TRAIN_H
#define MD_CMD_BENCH_TRAIN_H

/* argv[0] is "train". Returns the command's exit status. */
int md_bench_train_cmd(int argc, char **argv);
/* argv[0] is "attention". Returns the command's exit status. */
int md_bench_attention_cmd(int argc, char **argv);

#endif
