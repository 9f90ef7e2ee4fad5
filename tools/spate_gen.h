/*
 * tools/spate_gen.h - the spate CLI's generator, broker and benchmark verbs
 * (spate_gen.c). Each takes the verb's argv (argv[0] is the verb) and
 * returns the process exit code.
 */
#ifndef SPATE_TOOLS_SPATE_GEN_H
#define SPATE_TOOLS_SPATE_GEN_H

int spate_cmd_gen(int argc, char **argv);
int spate_cmd_kafka_broker(int argc, char **argv);
int spate_cmd_bench(int argc, char **argv);

#endif
