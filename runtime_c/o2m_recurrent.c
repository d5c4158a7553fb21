/*
 * o2m_recurrent.c - RNN, GRU and LSTM (float32).  See o2m_recurrent.h for the contract.
 */
#include "o2m_internal.h"
#include "o2m_recurrent.h"

static float act_apply(const o2m_rnn_act *a, float v)
{
    switch (a->code) {
    case O2M_RNN_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    case O2M_RNN_ACT_TANH:
        return tanhf(v);
    case O2M_RNN_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case O2M_RNN_ACT_HARDSIGMOID: {
        const float t = a->alpha * v + a->beta;
        return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    }
    case O2M_RNN_ACT_AFFINE:
        return a->alpha * v + a->beta;
    case O2M_RNN_ACT_LEAKYRELU:
        return v >= 0.0f ? v : a->alpha * v;
    case O2M_RNN_ACT_THRESHOLDEDRELU:
        return v > a->alpha ? v : 0.0f;
    case O2M_RNN_ACT_SCALEDTANH:
        return a->alpha * tanhf(a->beta * v);
    case O2M_RNN_ACT_ELU:
        return v >= 0.0f ? v : a->alpha * (expf(v) - 1.0f);
    case O2M_RNN_ACT_SOFTSIGN:
        return v / (1.0f + fabsf(v));
    case O2M_RNN_ACT_SOFTPLUS:
        return v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v));
    default:
        return v;
    }
}

static float clip_pre(const o2m_rnn_params *p, float v)
{
    if (p->has_clip) {
        v = v < -p->clip ? -p->clip : v;
        v = v > p->clip ? p->clip : v;
    }
    return v;
}

static float dot(const float *a, const float *b, int32_t n)
{
    float acc = 0.0f;
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += a[i] * b[i];
    }
    return acc;
}

static int32_t gate_count(int32_t kind)
{
    return kind == O2M_RNN_KIND_LSTM ? 4 : (kind == O2M_RNN_KIND_GRU ? 3 : 1);
}

/* proj[k][b][j] = x[t(k)][b] . w[j] + bias[j] for the n steps of one chunk. */
static void project(const o2m_rnn_params *p, const float *x, const float *w, const float *bw,
                    const float *br, int32_t rev, int32_t s0, int32_t n, float *proj)
{
    const int32_t hid = p->hidden;
    const int32_t gh = gate_count(p->kind) * hid;
    const int32_t no_rb_from = (p->kind == O2M_RNN_KIND_GRU && p->linear_before_reset) ? 2 * hid : gh;
    int32_t j, k, bb;
    for (j = 0; j < gh; ++j) {
        const float *wj = w + (size_t)j * p->input;
        float bias = 0.0f;
        if (bw != NULL) {
            bias = bw[j] + (j < no_rb_from ? br[j] : 0.0f);
        }
        for (k = 0; k < n; ++k) {
            const int32_t s = s0 + k;
            const int32_t t = rev ? p->seq - 1 - s : s;
            for (bb = 0; bb < p->batch; ++bb) {
                const float *xr = x + (size_t)t * p->x_t + (size_t)bb * p->x_b;
                proj[((size_t)k * p->batch + bb) * gh + j] = dot(xr, wj, p->input) + bias;
            }
        }
    }
}

/* One step of one batch entry: updates h (and c) in place from the projection g. */
static void cell(const o2m_rnn_params *p, const o2m_rnn_act *act, const float *g, const float *r,
                 const float *br, const float *peep, float *h, float *c, float *gate, float *tmp)
{
    const int32_t hid = p->hidden;
    int32_t j;
    if (p->kind == O2M_RNN_KIND_RNN) {
        for (j = 0; j < hid; ++j) {
            gate[j] = g[j] + dot(r + (size_t)j * hid, h, hid);
        }
        for (j = 0; j < hid; ++j) {
            h[j] = act_apply(&act[0], clip_pre(p, gate[j]));
        }
    } else if (p->kind == O2M_RNN_KIND_GRU) {
        for (j = 0; j < 2 * hid; ++j) {
            gate[j] = act_apply(&act[0], clip_pre(p, g[j] + dot(r + (size_t)j * hid, h, hid)));
        }
        if (p->linear_before_reset) {
            for (j = 0; j < hid; ++j) {
                const float rh = dot(r + (size_t)(2 * hid + j) * hid, h, hid) +
                                 (br != NULL ? br[2 * hid + j] : 0.0f);
                gate[2 * hid + j] = g[2 * hid + j] + gate[hid + j] * rh;
            }
        } else {
            for (j = 0; j < hid; ++j) {
                tmp[j] = gate[hid + j] * h[j];
            }
            for (j = 0; j < hid; ++j) {
                gate[2 * hid + j] = g[2 * hid + j] + dot(r + (size_t)(2 * hid + j) * hid, tmp, hid);
            }
        }
        for (j = 0; j < hid; ++j) {
            const float z = gate[j];
            const float cand = act_apply(&act[1], clip_pre(p, gate[2 * hid + j]));
            h[j] = (1.0f - z) * cand + z * h[j];
        }
    } else {
        for (j = 0; j < 4 * hid; ++j) {
            gate[j] = g[j] + dot(r + (size_t)j * hid, h, hid);
        }
        for (j = 0; j < hid; ++j) {
            const float pi = peep != NULL ? peep[j] : 0.0f;
            const float po = peep != NULL ? peep[hid + j] : 0.0f;
            const float pf = peep != NULL ? peep[2 * hid + j] : 0.0f;
            const float ig = act_apply(&act[0], clip_pre(p, gate[j] + pi * c[j]));
            const float fg = p->input_forget ? 1.0f - ig
                                             : act_apply(&act[0], clip_pre(p, gate[2 * hid + j] + pf * c[j]));
            const float cand = act_apply(&act[1], clip_pre(p, gate[3 * hid + j]));
            const float cn = fg * c[j] + ig * cand;
            const float og = act_apply(&act[0], clip_pre(p, gate[hid + j] + po * cn));
            c[j] = cn;
            h[j] = og * act_apply(&act[2], cn);
        }
    }
}

static void copy_row(float *dst, const float *src, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = src != NULL ? src[i] : 0.0f;
    }
}

void o2m_recurrent_f32(const o2m_rnn_params *p, const float *x, const float *w, const float *r,
                       const float *b, const int32_t *seq_lens, const float *h0, const float *c0,
                       const float *peep, float *y, float *y_h, float *y_c, float *scratch)
{
    const int32_t hid = p->hidden;
    const int32_t gh = gate_count(p->kind) * hid;
    const int32_t lstm = p->kind == O2M_RNN_KIND_LSTM;
    float *proj = scratch;
    float *hs = proj + (size_t)p->chunk * p->batch * gh;
    float *cs = hs + (size_t)p->batch * hid;
    float *gate = cs + (lstm ? (size_t)p->batch * hid : 0u);
    float *tmp = gate + gh;
    int32_t d, bb, s0;
    for (d = 0; d < p->dirs; ++d) {
        const int32_t rev = d == 1 || p->reverse;
        const float *wd = w + (size_t)d * gh * p->input;
        const float *rd = r + (size_t)d * gh * hid;
        const float *bw = b != NULL ? b + (size_t)d * 2 * gh : NULL;
        const float *br = bw != NULL ? bw + gh : NULL;
        const float *pd = (lstm && peep != NULL) ? peep + (size_t)d * 3 * hid : NULL;
        for (bb = 0; bb < p->batch; ++bb) {
            const size_t so = (size_t)d * p->s_d + (size_t)bb * p->s_b;
            copy_row(hs + (size_t)bb * hid, h0 != NULL ? h0 + so : NULL, hid);
            if (lstm) {
                copy_row(cs + (size_t)bb * hid, c0 != NULL ? c0 + so : NULL, hid);
            }
        }
        for (s0 = 0; s0 < p->seq; s0 += p->chunk) {
            const int32_t n = p->seq - s0 < p->chunk ? p->seq - s0 : p->chunk;
            int32_t k;
            project(p, x, wd, bw, br, rev, s0, n, proj);
            for (k = 0; k < n; ++k) {
                const int32_t t = rev ? p->seq - 1 - (s0 + k) : s0 + k;
                for (bb = 0; bb < p->batch; ++bb) {
                    float *yr = y != NULL ? y + (size_t)t * p->y_t + (size_t)d * p->y_d +
                                            (size_t)bb * p->y_b : NULL;
                    float *hb = hs + (size_t)bb * hid;
                    if (seq_lens != NULL && t >= seq_lens[bb]) {
                        if (yr != NULL) {
                            copy_row(yr, NULL, hid);
                        }
                        continue;
                    }
                    cell(p, p->act[d], proj + ((size_t)k * p->batch + bb) * gh, rd, br, pd, hb,
                         cs + (size_t)bb * hid, gate, tmp);
                    if (yr != NULL) {
                        copy_row(yr, hb, hid);
                    }
                }
            }
        }
        for (bb = 0; bb < p->batch; ++bb) {
            const size_t so = (size_t)d * p->s_d + (size_t)bb * p->s_b;
            if (y_h != NULL) {
                copy_row(y_h + so, hs + (size_t)bb * hid, hid);
            }
            if (lstm && y_c != NULL) {
                copy_row(y_c + so, cs + (size_t)bb * hid, hid);
            }
        }
    }
}
