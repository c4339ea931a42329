#include "train/svgplot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/outfile.h"
#include "util/provenance.h"

#define MARGIN_L 78
#define MARGIN_R 24
#define MARGIN_T 34
#define MARGIN_B 48
#define TITLE_H 30
#define MAX_TICKS 8

int md_nice_ticks(double lo, double hi, int max_ticks, double *ticks, double *step_out)
{
    if (!(hi > lo) || max_ticks < 2) {
        if (step_out) *step_out = 0;
        if (max_ticks < 1) return 0;
        ticks[0] = lo;
        return 1;
    }
    double raw = (hi - lo) / (max_ticks - 1);
    double mag = pow(10, floor(log10(raw)));
    double step = mag;
    static const double mult[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++) {
        step = mult[i] * mag;
        if ((floor(hi / step) - ceil(lo / step) + 1) <= max_ticks) break;
    }
    int n = 0;
    for (double k = ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && n < max_ticks; k++) {
        double v = k * step;
        if (fabs(v) < step * 1e-9) v = 0;
        ticks[n++] = v;
    }
    if (step_out) *step_out = step;
    return n;
}

/* A tick label precise enough to tell neighbours apart, with k/M suffixes
 * for large round numbers (steps and token counts). */
static void fmt_tick(char *buf, size_t n, double v, double step)
{
    double a = fabs(v);
    if (a >= 1e3 && step >= 1e3 && a < 1e15) {
        static const char *suf[] = {"k", "M", "G", "T"};
        int e = (int)(floor(log10(a)) / 3);
        if (e < 1) e = 1;
        if (e > 4) e = 4;
        double div = pow(1000, e), s = step / div;
        int dec = s >= 1 ? 0 : (int)ceil(-log10(s) - 1e-9);
        snprintf(buf, n, "%.*f%s", dec, v / div, suf[e - 1]);
        return;
    }
    if (step > 0 && (a < 1e-3 || a >= 1e6) && v != 0) {
        snprintf(buf, n, "%.2g", v);
        return;
    }
    int dec = step > 0 && step < 1 ? (int)ceil(-log10(step) - 1e-9) : 0;
    if (dec > 8) dec = 8;
    snprintf(buf, n, "%.*f", dec, v);
}

static void xml_text(FILE *fp, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        default: fputc(*s, fp);
        }
    }
}

static int usable(const md_plot_panel_t *p, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!p->log_y || y > 0);
}

static void draw_panel(FILE *fp, const md_plot_panel_t *p, double ox, double oy, double w, double h)
{
    double x0 = ox + MARGIN_L, x1 = ox + w - MARGIN_R, y0 = oy + MARGIN_T, y1 = oy + h - MARGIN_B;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < p->n_series; s++) {
        const md_plot_series_t *se = &p->series[s];
        int64_t skip = se->n >= 10 ? (int64_t)(p->y_skip_frac * (double)se->n) : 0;
        for (int64_t i = 0; i < se->n; i++) {
            if (!usable(p, se->x[i], se->y[i])) continue;
            double y = p->log_y ? log10(se->y[i]) : se->y[i];
            if (se->x[i] < xmin) xmin = se->x[i];
            if (se->x[i] > xmax) xmax = se->x[i];
            if (i < skip) continue;
            if (y < ymin) ymin = y;
            if (y > ymax) ymax = y;
        }
    }
    int has_hline = isfinite(p->hline) && (!p->log_y || p->hline > 0);
    double hl = has_hline ? (p->log_y ? log10(p->hline) : p->hline) : 0;
    if (has_hline && isfinite(ymin)) {
        if (hl < ymin) ymin = hl;
        if (hl > ymax) ymax = hl;
    }
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">", x0, oy + 20);
    xml_text(fp, p->title);
    fputs("</text>\n", fp);
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" stroke=\"#333\"/>\n", x0,
            y0, x1 - x0, y1 - y0);
    if (!isfinite(xmin)) {
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">no data yet</text>\n",
                (x0 + x1) / 2, (y0 + y1) / 2);
        return;
    }
    if (xmax == xmin) { xmin -= 0.5; xmax += 0.5; }
    if (ymax == ymin) { double d = fabs(ymin) * 0.05 + 1e-3; ymin -= d; ymax += d; }
    double pad = (ymax - ymin) * 0.05;
    ymin -= pad;
    ymax += pad;
#define SX(v) (x0 + ((v) - xmin) / (xmax - xmin) * (x1 - x0))
#define SY(v) (y1 - ((v) - ymin) / (ymax - ymin) * (y1 - y0))
    double ticks[MAX_TICKS + 2], step;
    char lab[64];
    int nt = md_nice_ticks(xmin, xmax, MAX_TICKS, ticks, &step);
    for (int i = 0; i < nt; i++) {
        double X = SX(ticks[i]);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", X, y0, X, y1);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", X, y1, X, y1 + 5);
        fmt_tick(lab, sizeof lab, ticks[i], step);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%s</text>\n", X, y1 + 18,
                lab);
    }
    if (p->log_y) {
        /* 1-2-5 steps within each decade (1 alone when those are too many);
         * nice linear values when the range is under a decade. */
        double lin[4 * MAX_TICKS] = {0};
        int nl = 0;
        if (ymax - ymin >= 1) {
            static const double mant[3] = {1, 2, 5};
            for (int pass = 0; pass < 2; pass++) {
                nl = 0;
                for (double k = floor(ymin); k <= ceil(ymax) && nl < 4 * MAX_TICKS; k++)
                    for (int j = 0; j < (pass == 0 ? 3 : 1) && nl < 4 * MAX_TICKS; j++) {
                        double v = mant[j] * pow(10, k), lv = log10(v);
                        if (lv >= ymin && lv <= ymax) lin[nl++] = v;
                    }
                if (nl <= MAX_TICKS) break;
            }
            if (nl > MAX_TICKS) nl = MAX_TICKS;
            for (int i = 0; i < nl; i++) ticks[i] = log10(lin[i]);
        } else {
            nl = md_nice_ticks(pow(10, ymin), pow(10, ymax), MAX_TICKS, lin, &step);
            for (int i = 0; i < nl; i++) ticks[i] = lin[i] > 0 ? log10(lin[i]) : -INFINITY;
        }
        nt = nl;
        for (int i = 0; i < nt; i++) {
            if (!isfinite(ticks[i])) continue;
            double Y = SY(ticks[i]);
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x0, Y, x1, Y);
            snprintf(lab, sizeof lab, "%.3g", lin[i]);
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%s</text>\n", x0 - 8,
                    Y + 4, lab);
        }
    } else {
        nt = md_nice_ticks(ymin, ymax, MAX_TICKS, ticks, &step);
        for (int i = 0; i < nt; i++) {
            double Y = SY(ticks[i]);
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x0, Y, x1, Y);
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x0 - 5, Y, x0, Y);
            fmt_tick(lab, sizeof lab, ticks[i], step);
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%s</text>\n", x0 - 8,
                    Y + 4, lab);
        }
    }
    if (has_hline) {
        double Y = SY(hl);
        fprintf(fp,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"2,3\"/>\n",
                x0, Y, x1, Y);
        if (p->hline_label) {
            /* at the left: the legend sits top right */
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#555\">", x0 + 6,
                    Y - 4 < y0 + 12 ? Y + 12 : Y - 4);
            xml_text(fp, p->hline_label);
            fputs("</text>\n", fp);
        }
    }
    /* Curves, clipped to the frame. */
    static int clip_id;
    clip_id++;
    fprintf(fp, "<clipPath id=\"c%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
            clip_id, x0, y0, x1 - x0, y1 - y0);
    fprintf(fp, "<g clip-path=\"url(#c%d)\" fill=\"none\" stroke-width=\"1.6\">\n", clip_id);
    for (int s = 0; s < p->n_series; s++) {
        const md_plot_series_t *se = &p->series[s];
        int open = 0;
        for (int64_t i = 0; i < se->n; i++) {
            if (!usable(p, se->x[i], se->y[i])) {
                if (open) fputs("\"/>\n", fp);
                open = 0;
                continue;
            }
            double y = p->log_y ? log10(se->y[i]) : se->y[i];
            if (!open) {
                fprintf(fp, "<polyline stroke=\"%s\"%s points=\"", se->color,
                        se->dashed ? " stroke-dasharray=\"6,4\"" : "");
                open = 1;
            }
            fprintf(fp, "%.1f,%.1f ", SX(se->x[i]), SY(y));
        }
        if (open) fputs("\"/>\n", fp);
        if (se->markers)
            for (int64_t i = 0; i < se->n; i++) {
                if (!usable(p, se->x[i], se->y[i])) continue;
                double y = p->log_y ? log10(se->y[i]) : se->y[i];
                fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.6\" fill=\"%s\" stroke=\"none\"/>\n", SX(se->x[i]),
                        SY(y), se->color);
            }
    }
    fputs("</g>\n", fp);
#undef SX
#undef SY
    /* Axis labels and legend. */
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">", (x0 + x1) / 2, y1 + 38);
    xml_text(fp, p->xlabel);
    fputs("</text>\n", fp);
    fprintf(fp, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">",
            ox + 18, (y0 + y1) / 2);
    xml_text(fp, p->ylabel);
    fputs("</text>\n", fp);
    double lx = x1 - 190, ly = y0 + 8;
    int n_leg = p->n_series;
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"182\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" "
                "stroke=\"#bbb\"/>\n", lx, ly, 8 + 18 * n_leg);
    for (int s = 0; s < p->n_series; s++) {
        const md_plot_series_t *se = &p->series[s];
        double yy = ly + 16 + 18 * s;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                lx + 8, yy - 4, lx + 36, yy - 4, se->color, se->dashed ? " stroke-dasharray=\"6,4\"" : "");
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", lx + 42, yy);
        xml_text(fp, se->name);
        fputs("</text>\n", fp);
    }
}

int md_svg_plot(const char *path, const char *title, int n_panels, const md_plot_panel_t *panels, int width,
                int panel_height)
{
    md_outfile_t *o = md_outfile_open(path);
    if (!o) return -1;
    FILE *fp = o->fp;
    int height = TITLE_H + n_panels * panel_height;
    fprintf(fp,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"Helvetica, Arial, sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n",
            width, height, width, height);
    md_provenance_svg(fp);
    fprintf(fp, "<text x=\"%d\" y=\"21\" text-anchor=\"middle\" font-size=\"15\">", width / 2);
    xml_text(fp, title);
    fputs("</text>\n", fp);
    for (int i = 0; i < n_panels; i++) draw_panel(fp, &panels[i], 0, TITLE_H + (double)i * panel_height, width, panel_height);
    fputs("</svg>\n", fp);
    return md_outfile_commit(o);
}
