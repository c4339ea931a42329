/* Line plots as standalone SVG, with no plotting dependency: stacked panels,
 * each with axes, "nice" 1-2-5 ticks, tick labels, axis labels, a legend
 * and any number of line series (NaN y values break a line). Written
 * atomically through util/outfile.h, so a viewer never sees half a file.
 */
#ifndef MD_TRAIN_SVGPLOT_H
#define MD_TRAIN_SVGPLOT_H

#include <stdint.h>

typedef struct md_plot_series {
    const char *name;        /* legend label */
    const char *color;       /* CSS color, e.g. "#1f77b4" */
    int dashed;              /* draw dashed */
    int markers;             /* draw a dot at each point (sparse series) */
    int64_t n;
    const double *x, *y;
} md_plot_series_t;

typedef struct md_plot_panel {
    const char *title;
    const char *xlabel, *ylabel;
    int n_series;
    const md_plot_series_t *series;
    int log_y;               /* log10 y axis (values <= 0 skipped) */
    double y_skip_frac;      /* leave each series' first fraction of points out of the y range
                                (they are drawn, clipped): an early spike would flatten the rest */
    double hline;            /* a dotted reference line at this y; NaN for none */
    const char *hline_label;
} md_plot_panel_t;

/* Writes the panels one above the other, width x (height per panel) pixels.
 * 0, or -1 after one error line. */
int md_svg_plot(const char *path, const char *title, int n_panels, const md_plot_panel_t *panels, int width,
                int panel_height);

/* Up to max_ticks "nice" tick positions covering [lo, hi] (1, 2 or 5 x 10^k
 * apart). Returns the count; *step receives the spacing. */
int md_nice_ticks(double lo, double hi, int max_ticks, double *ticks, double *step);

#endif
