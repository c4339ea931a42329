#include "util/provenance.h"

#include <stdlib.h>
#include <string.h>

#include "build_info.h"

static char *command_line;

/* Characters that need no quoting anywhere in a POSIX shell word. */
static int shell_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_-./:=,+@%^", c);
}

static void quote_arg(FILE *fp, const char *s)
{
    int plain = *s != 0, control = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (!shell_safe(*p)) plain = 0;
        if (*p < 0x20 || *p == 0x7f) control = 1;
    }
    if (plain) { fputs(s, fp); return; }
    if (!control) {   /* '...' with each ' written as '\'' */
        fputc('\'', fp);
        for (; *s; s++) {
            if (*s == '\'') fputs("'\\''", fp);
            else fputc(*s, fp);
        }
        fputc('\'', fp);
        return;
    }
    fputs("$'", fp);   /* bash/ksh/zsh ANSI-C quoting */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == '\'') fprintf(fp, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", fp);
        else if (*p == '\t') fputs("\\t", fp);
        else if (*p < 0x20 || *p == 0x7f) fprintf(fp, "\\x%02x", *p);
        else fputc(*p, fp);
    }
    fputc('\'', fp);
}

void md_provenance_record(int argc, char **argv)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    if (!mf) return;
    for (int i = 0; i < argc; i++) {
        if (i) fputc(' ', mf);
        quote_arg(mf, argv[i]);
    }
    if (fclose(mf) != 0) { free(buf); return; }
    free(command_line);
    command_line = buf;
}

const char *md_provenance_command(void) { return command_line; }

void md_provenance_comment(FILE *fp, const char *prefix)
{
    fprintf(fp, "%s mambadna %s\n", prefix, MD_VERSION);
    if (command_line) fprintf(fp, "%s command: %s\n", prefix, command_line);
}

void md_provenance_svg(FILE *fp)
{
    fprintf(fp, "<metadata>mambadna %s", MD_VERSION);
    if (command_line) {
        fputs("; command: ", fp);
        for (const char *p = command_line; *p; p++) {
            if (*p == '&') fputs("&amp;", fp);
            else if (*p == '<') fputs("&lt;", fp);
            else if (*p == '>') fputs("&gt;", fp);
            else fputc(*p, fp);
        }
    }
    fputs("</metadata>\n", fp);
}

json_t *md_provenance_json(void)
{
    json_t *o = json_pack("{s:s}", "version", MD_VERSION);
    if (command_line) json_object_set_new(o, "command", json_string(command_line));
    return o;
}
