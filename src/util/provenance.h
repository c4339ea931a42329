/* Provenance: which mambadna, run with which command line, made an output.
 *
 * md_log_start() records the command line once per process; every output
 * writer then stamps it in the form its format allows, through these
 * helpers only:
 *   - TSV and BED files: '#' lines at the top (md_provenance_comment);
 *   - safetensors: the __metadata__ keys "mambadna" and "mambadna_command"
 *     (md_st_write adds them to every file);
 *   - JSON files: a "mambadna" object {"version", "command"};
 *   - SVG pictures: a <metadata> element.
 * FASTA, FASTQ and .2bit have no place for it and carry none.
 */
#ifndef MD_UTIL_PROVENANCE_H
#define MD_UTIL_PROVENANCE_H

#include <jansson.h>
#include <stdio.h>

/* Records argv as one line, each argument shell-quoted where needed (so it
 * can be pasted back into a shell; control characters become $'\n' style
 * escapes, so the line never breaks). Called by md_log_start(). */
void md_provenance_record(int argc, char **argv);

/* The recorded command line, or NULL when none was recorded (unit tests). */
const char *md_provenance_command(void);

/* Writes "PREFIX mambadna X.Y.Z\n" and, when recorded,
 * "PREFIX command: CMDLINE\n". The first line is what --version prints. */
void md_provenance_comment(FILE *fp, const char *prefix);

/* A new JSON object {"version": "X.Y.Z", "command": CMDLINE}; "command" is
 * left out when none was recorded. */
json_t *md_provenance_json(void);

/* Writes "<metadata>mambadna X.Y.Z; command: CMDLINE</metadata>\n", XML-
 * escaped, for just after an SVG's opening <svg> tag (an XML comment could
 * not hold the "--" of long options). */
void md_provenance_svg(FILE *fp);

#endif
