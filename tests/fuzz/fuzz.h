/*
 * The libFuzzer entry points. A harness defines LLVMFuzzerTestOneInput
 * (and may define LLVMFuzzerInitialize); libFuzzer's main or replay.c's
 * main calls it. Inputs must not be modified and must not leak.
 */
#ifndef STACKBACK_FUZZ_H
#define STACKBACK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
