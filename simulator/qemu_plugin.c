/*
 * onnx2mcu instruction counter: a QEMU TCG plugin (plugin API version 1, QEMU 4.2 .. 8.x).
 *
 * Counts every guest instruction executed, by adding each translation block's
 * instruction count to a 64-bit counter inline whenever the block runs (no helper
 * call, so it costs little).  Optionally also counts the instructions executed in
 * regions bracketed by two marker addresses:
 *     -plugin libo2m_icount.so,begin=0x1234,end=0x5678
 * adds (counter at an entry to `end`) - (counter at the preceding entry to `begin`).
 * With step=ADDR (a profile build's <prefix>_profile_mark) it also records the counter at
 * every entry to ADDR, so consecutive entries bracket one schedule step each.
 * Results go to the QEMU log (enable with `-d plugin`, choose the file with -D):
 *     o2m_icount total=<n> region=<n> regions=<k>
 *     o2m_step <i> <counter at the i-th entry to step>      (one line per entry)
 *
 * Debian's QEMU does not ship qemu-plugin.h, so the few API declarations used are
 * written out below; they follow the stable C ABI of API version 1.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the part of the QEMU plugin API this file uses -------------------- */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };

typedef void (*o2m_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*o2m_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*o2m_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, o2m_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, o2m_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, o2m_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

#define O2M_EXPORT __attribute__((visibility("default")))

O2M_EXPORT int qemu_plugin_version = 1;

/* ---- counting ----------------------------------------------------------- */
static uint64_t insn_count;   /* updated inline by the translated code */
static uint64_t region_count; /* sum over begin..end regions */
static uint64_t region_start;
static uint64_t region_total_entries;
static int region_open;

static int have_begin, have_end, have_step;
static uint64_t begin_addr, end_addr, step_addr;
static uint64_t *step_counts; /* counter at each entry to step_addr */
static size_t step_used, step_cap;

static void on_step(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (step_used == step_cap) {
        size_t cap = step_cap ? 2 * step_cap : 256;
        uint64_t *grown = realloc(step_counts, cap * sizeof *grown);
        if (grown == NULL) {
            return;
        }
        step_counts = grown;
        step_cap = cap;
    }
    step_counts[step_used++] = insn_count;
}

static void on_begin(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    region_start = insn_count;
    region_open = 1;
}

static void on_end(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (region_open) {
        region_count += insn_count - region_start;
        region_total_entries += 1;
        region_open = 0;
    }
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t vaddr;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insn_count,
                                             (uint64_t)qemu_plugin_tb_n_insns(tb));
    if (!have_begin && !have_end && !have_step) {
        return;
    }
    vaddr = qemu_plugin_tb_vaddr(tb) & ~(uint64_t)1; /* Thumb bit, if any */
    if (have_begin && vaddr == begin_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    if (have_end && vaddr == end_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    if (have_step && vaddr == step_addr) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_step, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata)
{
    char line[160];
    (void)id;
    (void)userdata;
    snprintf(line, sizeof line, "o2m_icount total=%" PRIu64 " region=%" PRIu64 " regions=%" PRIu64 "\n",
             insn_count, region_count, region_total_entries);
    qemu_plugin_outs(line);
    for (size_t i = 0; i < step_used; ++i) {
        snprintf(line, sizeof line, "o2m_step %zu %" PRIu64 "\n", i, step_counts[i]);
        qemu_plugin_outs(line);
    }
    free(step_counts);
}

static int parse_addr(const char *text, uint64_t *out)
{
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 0);
    if (end == text || *end != '\0') {
        return -1;
    }
    *out = (uint64_t)value & ~(uint64_t)1;
    return 0;
}

O2M_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "begin=", 6) == 0) {
            if (parse_addr(argv[i] + 6, &begin_addr) != 0) {
                fprintf(stderr, "o2m_icount: bad argument '%s'\n", argv[i]);
                return -1;
            }
            have_begin = 1;
        } else if (strncmp(argv[i], "end=", 4) == 0) {
            if (parse_addr(argv[i] + 4, &end_addr) != 0) {
                fprintf(stderr, "o2m_icount: bad argument '%s'\n", argv[i]);
                return -1;
            }
            have_end = 1;
        } else if (strncmp(argv[i], "step=", 5) == 0) {
            if (parse_addr(argv[i] + 5, &step_addr) != 0) {
                fprintf(stderr, "o2m_icount: bad argument '%s'\n", argv[i]);
                return -1;
            }
            have_step = 1;
        } else {
            fprintf(stderr, "o2m_icount: unknown argument '%s' (expected begin=ADDR, end=ADDR, step=ADDR)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
