# Writes OUT = '#define MD_GIT_DESCRIBE "..."' from `git describe --always
# --dirty` in SRC ("unknown" outside a git checkout). Run at every build by
# the git_revision target (CMakeLists.txt), so a binary names the commit it
# was built from, not the one of the last configure; the file is rewritten
# only when the revision changed, so an unchanged one rebuilds nothing.
execute_process(COMMAND git describe --always --dirty
                WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE rev OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET)
if(NOT rev)
  set(rev "unknown")
endif()
set(text "/* Generated at build time by tools/git-revision.cmake. */\n#define MD_GIT_DESCRIBE \"${rev}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
else()
  set(old "")
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
