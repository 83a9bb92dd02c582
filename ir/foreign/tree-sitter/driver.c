/*
 * @fileoverview Driver of the tree-sitter foreign image: the tree-sitter
 * runtime (vendored C sources of the `tree-sitter` npm package) with the C
 * grammar's generated parser (`tree-sitter-c`), run through the
 * foreign-image contract (README "Foreign images").  Only this file is
 * kjit's; src/kernel/build-foreign.ts compiles it with the packages' sources
 * and a generated inputs file into build/ir/tree-sitter.bc.
 *
 *   ts_init()     creates the parser and compiles the grammar's highlights
 *                 query, once, on the kernel thread;
 *   ts_entry(i)   one operation: parse text i % tsd_ntexts (chunks of the
 *                 tree-sitter runtime's own C sources, split at top-level
 *                 definitions), walk the whole tree with a cursor, run the
 *                 highlights query over it, and every fourth operation edit
 *                 the text (insert a comment at a line start), reparse
 *                 incrementally and diff the trees.  Returns a hash of node
 *                 symbols and byte ranges, captures and changed ranges:
 *                 deterministic, so the checksum is comparable across modes.
 *
 * Memory: libc malloc/free through tree-sitter's allocator hooks (the JIT
 * resolves libc from the process).  Every operation frees what it made.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kjit_rt.h"
#include "tree_sitter/api.h"

const TSLanguage *tree_sitter_c(void);

/* build/ir/foreign/tree-sitter-inputs.c (generated) */
extern const char *const tsd_texts[];
extern const uint32_t tsd_lengths[];
extern const uint32_t tsd_ntexts;
extern const uint32_t tsd_max_length;
extern const char tsd_query_source[];
extern const uint32_t tsd_query_length;

static TSParser *parser;
static TSQuery *query;
static TSQueryCursor *qcursor;
static char *edit_buf; /* a text with the inserted comment */

static const char INSERT[] = "/* k */";
#define INSERT_LEN ((uint32_t)(sizeof INSERT - 1))

static inline uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

void ts_init(void) {
  parser = ts_parser_new();
  if (!parser) kjit_panic("tree-sitter: ts_parser_new failed");
  if (!ts_parser_set_language(parser, tree_sitter_c())) kjit_panic("tree-sitter: the C grammar's ABI is not supported by this runtime");
  uint32_t error_offset = 0;
  TSQueryError error = TSQueryErrorNone;
  query = ts_query_new(tree_sitter_c(), tsd_query_source, tsd_query_length, &error_offset, &error);
  if (!query) kjit_panic("tree-sitter: the highlights query does not compile");
  qcursor = ts_query_cursor_new();
  edit_buf = malloc(tsd_max_length + INSERT_LEN + 1);
  if (!qcursor || !edit_buf) kjit_panic("tree-sitter: out of memory");
}

/* Preorder walk of the whole tree: symbol, field, byte range and error flag of every node. */
static uint64_t walk(TSTree *tree) {
  uint64_t h = 0;
  TSTreeCursor c = ts_tree_cursor_new(ts_tree_root_node(tree));
  uint32_t depth = 0;
  for (;;) {
    TSNode n = ts_tree_cursor_current_node(&c);
    h = mix(h, ((uint64_t)ts_node_symbol(n) << 32) | ((uint64_t)ts_tree_cursor_current_field_id(&c) << 16) | depth);
    h = mix(h, ((uint64_t)ts_node_start_byte(n) << 32) | ts_node_end_byte(n));
    if (ts_node_is_missing(n) || ts_node_is_error(n)) h = mix(h, 0xe77);
    if (ts_tree_cursor_goto_first_child(&c)) {
      depth++;
      continue;
    }
    while (!ts_tree_cursor_goto_next_sibling(&c)) {
      if (!ts_tree_cursor_goto_parent(&c)) {
        ts_tree_cursor_delete(&c);
        return mix(h, depth);
      }
      depth--;
    }
  }
}

/* The highlights query over the tree: every capture, in document order. */
static uint64_t highlight(TSTree *tree) {
  uint64_t h = 0;
  ts_query_cursor_exec(qcursor, query, ts_tree_root_node(tree));
  TSQueryMatch m;
  uint32_t ci;
  while (ts_query_cursor_next_capture(qcursor, &m, &ci)) {
    const TSQueryCapture *cap = &m.captures[ci];
    h = mix(h, ((uint64_t)m.pattern_index << 48) | ((uint64_t)cap->index << 32) | ts_node_start_byte(cap->node));
  }
  return h;
}

/* Insert a comment at the start of a line, reparse with the old tree, diff. */
static uint64_t edit_and_reparse(TSTree *tree, const char *text, uint32_t len, uint64_t i) {
  uint32_t pos = (uint32_t)((i * 2654435761u) % len);
  while (pos < len && text[pos] != '\n') pos++;
  if (pos < len) pos++; /* just after the newline, or at the end */
  uint32_t row = 0;
  for (uint32_t k = 0; k < pos; k++) row += text[k] == '\n';
  uint32_t col = 0;
  while (col < pos && text[pos - col - 1] != '\n') col++;
  memcpy(edit_buf, text, pos);
  memcpy(edit_buf + pos, INSERT, INSERT_LEN);
  memcpy(edit_buf + pos + INSERT_LEN, text + pos, len - pos);

  TSInputEdit e = {
    .start_byte = pos, .old_end_byte = pos, .new_end_byte = pos + INSERT_LEN,
    .start_point = { row, col }, .old_end_point = { row, col }, .new_end_point = { row, col + INSERT_LEN },
  };
  ts_tree_edit(tree, &e);
  TSTree *edited = ts_parser_parse_string(parser, tree, edit_buf, len + INSERT_LEN);
  if (!edited) kjit_panic("tree-sitter: reparse failed");
  uint32_t nranges = 0;
  TSRange *ranges = ts_tree_get_changed_ranges(tree, edited, &nranges);
  uint64_t h = mix(pos, nranges);
  for (uint32_t k = 0; k < nranges; k++) h = mix(h, ((uint64_t)ranges[k].start_byte << 32) | ranges[k].end_byte);
  free(ranges);
  h = mix(h, walk(edited));
  ts_tree_delete(edited);
  return h;
}

uint64_t ts_entry(uint64_t i) {
  uint32_t t = (uint32_t)(i % tsd_ntexts);
  const char *text = tsd_texts[t];
  uint32_t len = tsd_lengths[t];
  TSTree *tree = ts_parser_parse_string(parser, NULL, text, len);
  if (!tree) kjit_panic("tree-sitter: parse failed");
  uint64_t h = mix(t, walk(tree));
  h = mix(h, highlight(tree));
  if ((i & 3) == 3) h = mix(h, edit_and_reparse(tree, text, len, i));
  ts_tree_delete(tree);
  return h;
}
