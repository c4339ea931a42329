/* One entry point per subcommand: int cmd_<name>(int argc, char **argv),
 * argv[0] being the command name. Each returns the process exit status:
 * 0 on success, 1 on any user-caused failure (after one error line). */
#ifndef MD_CMD_CMD_H
#define MD_CMD_CMD_H

int cmd_version(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_view(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
