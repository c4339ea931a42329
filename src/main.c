/* mambadna: the command table and nothing else. */
#include <stdio.h>
#include <string.h>

#include "build_info.h"
#include "cmd/cmd.h"
#include "util/cli.h"
#include "util/log.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"view",     cmd_view,     "print contigs or regions of a genome as FASTA, or contig lengths"},
    {"sample",   cmd_sample,   "draw training windows from genomes as FASTA or BED"},
    {"simulate", cmd_simulate, "simulate great-ape-like genomes, or reads from a genome"},
    {"pretrain", cmd_pretrain, "train a DNA language model on genome windows"},
    {"eval",     cmd_eval,     "loss, perplexity and bits per base of a model on a genome"},
    {"finetune", cmd_finetune, "fine-tune a species classifier on labelled genomes"},
    {"classify", cmd_classify, "assign reads to species with a classifier"},
    {"info",     cmd_info,     "describe a model preset or a checkpoint"},
    {"export",   cmd_export,   "write a checkpoint as a Hugging Face model folder"},
    {"bench",    cmd_bench,    "benchmark kernels and training on this machine"},
    {"version",  cmd_version,  "print the version and build details"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

/* Help output is for reading, not a run: it gets no closing log lines. */
static int asks_for_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "\nProgram: mambadna (DNA language models: Mamba, Hyena, Transformer++)\n"
            "Version: %s\n\n"
            "Usage:   mambadna <command> [options]\n\n"
            "Commands:\n", MD_VERSION);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "\nRun 'mambadna <command> -h' for a command's options.\n\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stdout); return 0; }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) { usage(stdout); return 0; }
    if (!strcmp(name, "--version")) { printf("mambadna %s\n", MD_VERSION); return 0; }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(name, commands[i].name)) continue;
        md_log_start(argc, argv);
        md_threads_init();
        int ret = commands[i].run(argc - 1, argv + 1);
        if (ret == 0 && strcmp(name, "version") && !asks_for_help(argc, argv)) md_log_finish();
        return ret;
    }
    fprintf(stderr, "[E::main] unrecognized command '%s'; run 'mambadna -h' for the list\n", name);
    return 1;
}
