//! Context from syntax trees: each case is one the indentation heuristic gets wrong or only
//! roughly right, checked against what a person would hand an LLM to rewrite.

use crate::scan::*;

fn syntax_scan(path: &str, src: &str, max_block_lines: usize) -> Vec<Todo> {
    let opts = ScanOptions {
        max_block_lines,
        ..ScanOptions::default()
    };
    let todos = scan_source(path, src, &opts);
    let heuristic = scan_source(
        path,
        src,
        &ScanOptions {
            syntax_context: false,
            ..opts.clone()
        },
    );
    // A listing without trees and a run with them must name the same tasks.
    let ids = |t: &[Todo]| t.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&todos), ids(&heuristic), "ids depend on syntax_context");
    for t in &todos {
        let (first, last) = t.block_lines;
        assert!(first <= t.line && t.line <= last, "{t:#?}");
        let start_line = src[..t.block.start].matches('\n').count() + 1;
        assert_eq!(start_line, first, "block.start disagrees with block_lines");
        assert!(t.block.end == src.len() || src.as_bytes()[t.block.end - 1] == b'\n');
    }
    todos
}

/// (line, block_lines, symbol) of every TODO, for one-line expectations.
fn contexts(path: &str, src: &str) -> Vec<(usize, (usize, usize), Option<String>)> {
    syntax_scan(path, src, 120)
        .into_iter()
        .map(|t| (t.line, t.block_lines, t.symbol))
        .collect()
}

fn ctx(
    line: usize,
    lines: (usize, usize),
    symbol: &str,
) -> (usize, (usize, usize), Option<String>) {
    (line, lines, Some(symbol.to_string()))
}

#[test]
fn grammars_cover_the_eight_languages() {
    for lang in [
        "rust",
        "python",
        "javascript",
        "typescript",
        "go",
        "c",
        "cpp",
        "java",
    ] {
        assert!(has_grammar(lang), "{lang}");
    }
    assert!(!has_grammar("ruby"));
}

#[test]
fn rust_method_not_the_impl_and_doc_comment_with_attributes() {
    let src = "\
impl Parser {
    /// TODO: document the errors
    #[inline]
    pub fn parse<T>(
        &self,
        input: &str,
    ) -> Result<T, Error>
    where
        T: FromStr,
    {
        let f = |x: u32| {
            // FIXME: overflow
            x + 1
        };
        f(1)
    }
}
";
    assert_eq!(
        contexts("a.rs", src),
        [
            ctx(
                2,
                (2, 16),
                "pub fn parse<T>( &self, input: &str, ) -> Result<T, Error> where T: FromStr,"
            ),
            ctx(
                12,
                (4, 16),
                "pub fn parse<T>( &self, input: &str, ) -> Result<T, Error> where T: FromStr,"
            ),
        ]
    );
}

#[test]
fn c_function_whose_body_is_not_indented() {
    // Generated and old code: the heuristic sees only column-0 lines here.
    let src = "\
#include <stdio.h>

static int
count(const char *s)
{
int n = 0;
/* TODO: handle NULL */
while (*s++) n++;
return n;
}

/* XXX: packed on purpose */
struct header {
    int len;
};
";
    assert_eq!(
        contexts("a.c", src),
        [
            ctx(7, (3, 10), "static int count(const char *s)"),
            ctx(12, (12, 15), "struct header"),
        ]
    );
}

#[test]
fn cpp_inline_method_template_and_namespace() {
    let src = "\
namespace net {
class Socket {
public:
    int send(const char *buf,
             int len) {
        // TODO: partial writes
        return ::send(fd, buf, len, 0);
    }
};

template <typename T>
T clamp(T v) {
    // BUG: ignores NaN
    return v;
}
}
";
    assert_eq!(
        contexts("a.cpp", src),
        [
            ctx(6, (4, 8), "int send(const char *buf, int len)"),
            ctx(13, (11, 15), "template <typename T> T clamp(T v)"),
        ]
    );
}

#[test]
fn python_innermost_def_decorators_and_class_attributes() {
    let src = "\
class Cache(Base):
    # TODO: make the size configurable
    size = 10

    # FIXME: not thread-safe
    @property
    def items(self):
        def inner(x):
            return x  # HACK: identity
        return [inner(i) for i in self._items]
";
    assert_eq!(
        contexts("a.py", src),
        [
            ctx(2, (1, 10), "class Cache(Base):"),
            ctx(5, (5, 10), "@property def items(self):"),
            ctx(9, (8, 9), "def inner(x):"),
        ]
    );
    // A docstring TODO belongs to the function it documents.
    let doc = "def outer():\n    def inner():\n        \"\"\"TODO: doc of inner\"\"\"\n        return 1\n    return inner\n";
    assert_eq!(contexts("b.py", doc), [ctx(3, (2, 4), "def inner():")]);
}

#[test]
fn javascript_callbacks_classes_and_exports() {
    let src = "\
describe('parser', () => {
  it('reads numbers', () => {
    // TODO: negative numbers
    expect(parse('1')).toBe(1);
  });
});

// FIXME: memoize
export const parse = (s) => {
  return Number(s);
};

class Lexer {
  next() {
    /* HACK: one char at a time */
    return this.s[this.i++];
  }
}
";
    assert_eq!(
        contexts("a.js", src),
        [
            ctx(3, (2, 5), "it('reads numbers', () =>"),
            ctx(8, (8, 11), "export const parse = (s) =>"),
            ctx(15, (14, 17), "next()"),
        ]
    );
}

#[test]
fn typescript_interfaces_generics_and_tsx_components() {
    let src = "\
interface Options {
  // TODO: a timeout
  retries: number;
}

export async function fetchAll<
  T extends object,
>(urls: string[]): Promise<T[]> {
  // XXX: no concurrency limit
  return Promise.all(urls.map(get));
}
";
    assert_eq!(
        contexts("a.ts", src),
        [
            ctx(2, (1, 4), "interface Options"),
            ctx(
                9,
                (6, 11),
                "export async function fetchAll< T extends object, >(urls: string[]): Promise<T[]>"
            ),
        ]
    );
    // JSX needs the TSX grammar: with TypeScript's the component would not parse.
    let tsx = "\
export function App({ name }: Props) {
  return (
    <div>
      {/* TODO: translate */}
      Hello {name}
    </div>
  );
}
";
    assert_eq!(
        contexts("a.tsx", tsx),
        [ctx(4, (1, 8), "export function App({ name }: Props)")]
    );
}

#[test]
fn go_methods_func_literals_and_types() {
    let src = "\
package server

// TODO: a read deadline
type Server struct {
\taddr string
}

func (s *Server) Serve(
\tctx context.Context,
) error {
\tgo func() {
\t\t// FIXME: leaks on shutdown
\t}()
\treturn nil
}
";
    assert_eq!(
        contexts("a.go", src),
        [
            ctx(3, (3, 6), "type Server struct {"),
            ctx(
                12,
                (8, 15),
                "func (s *Server) Serve( ctx context.Context, ) error"
            ),
        ]
    );
}

#[test]
fn java_methods_constructors_lambdas_and_nested_classes() {
    let src = "\
public class Repo {
    private final Map<String, Item> items;

    @Inject
    public Repo(Map<String, Item> items) {
        // TODO: copy defensively
        this.items = items;
    }

    static class Item {
        @Override
        public String toString() {
            return list.stream().map(x -> {
                /* FIXME: quadratic */
                return x.name;
            }).collect(joining());
        }
    }
}
";
    assert_eq!(
        contexts("A.java", src),
        [
            ctx(6, (4, 8), "@Inject public Repo(Map<String, Item> items)"),
            ctx(14, (11, 17), "@Override public String toString()"),
        ]
    );
}

#[test]
fn too_large_or_unparsed_falls_back_to_the_heuristic() {
    // A function over the bound: the heuristic narrows it to the `if` around the tag.
    let mut src = String::from("fn big(x: u32) {\n");
    for i in 0..50 {
        src.push_str(&format!("    let v{i} = {i};\n"));
    }
    src.push_str("    if x > 1 {\n        // TODO: inner\n        x;\n    }\n}\n");
    let t = &syntax_scan("a.rs", &src, 20)[0];
    assert_eq!(t.symbol.as_deref(), Some("if x > 1 {"));
    assert_eq!(t.block_lines, (52, 55));

    // A language without a grammar, with the option on, gets the heuristic.
    let rb = "class A\n  def f\n    # TODO: ruby\n    1\n  end\nend\n";
    let t = &syntax_scan("a.rb", rb, 120)[0];
    assert_eq!(t.symbol.as_deref(), Some("class A"));

    // Broken code does not stop the scan; a definition the parser recovered still counts.
    let broken = "fn ok() {\n    // TODO: fine\n    let x = ;\n}\n\nfn (((\n// TODO: lost\n";
    let todos = syntax_scan("a.rs", broken, 120);
    assert_eq!(todos.len(), 2);
    assert_eq!(todos[0].block_lines, (1, 4));
}

#[test]
fn ids_are_stable_with_syntax_trees_too() {
    let base = "fn a() {\n    // TODO: fix a\n    1\n}\n\nfn b() {\n    // TODO: fix b\n}\n";
    let ids = |src: &str| -> Vec<String> {
        syntax_scan("m.rs", src, 120)
            .into_iter()
            .map(|t| t.id)
            .collect()
    };
    let original = ids(base);
    assert_eq!(ids(&format!("use x;\n\n{base}")), original);
    assert_eq!(ids(&base.replace("    ", "\t")), original);
    let moved = "fn b() {\n    // TODO: fix b\n}\n\nfn a() {\n    // TODO: fix a\n    1\n}\n";
    assert_eq!(ids(moved), [original[1].clone(), original[0].clone()]);
}

#[test]
fn generated_chains_neither_overflow_the_stack_nor_crawl() {
    // A comment above a 5,000-call method chain: each call nests one level deeper, all
    // starting at the same byte. This once recursed once per level and aborted the process.
    let mut chain = String::from("// TODO: split this chain\napi.use(m0)\n");
    for i in 1..5000 {
        chain.push_str(&format!("  .use(m{i})\n"));
    }
    chain.push_str(";\n");
    let todos = syntax_scan("chain.js", &chain, 120);
    assert_eq!(todos.len(), 1);
    assert_eq!(todos[0].line, 1);

    // A 10,000-branch `else if` chain is a tree 10,000 levels deep; the function around the
    // last branch is still found (climbing with parent() took 8 s here).
    let mut deep = String::from("int f(int x) {\n  if (x == 0) { return 0; }\n");
    for i in 1..10_000 {
        deep.push_str(&format!("  else if (x == {i}) {{ return {i}; }}\n"));
    }
    deep.push_str("  else {\n    /* TODO: last branch */\n    return -1;\n  }\n}\n");
    let lines = deep.lines().count();
    let t = &syntax_scan("deep.c", &deep, lines + 1)[0];
    assert_eq!(t.symbol.as_deref(), Some("int f(int x)"));
    assert_eq!(t.block_lines, (1, lines));
}

#[test]
fn a_trailing_comment_above_does_not_join_the_block() {
    let src = "x = 1  # note\n# TODO: fix\ndef f():\n    pass\n";
    assert_eq!(contexts("a.py", src), [ctx(2, (2, 4), "def f():")]);
    let c = "int x = 1; /* note */\n/* TODO: fix */\nint f(void) {\n    return x;\n}\n";
    assert_eq!(contexts("a.c", c), [ctx(2, (2, 5), "int f(void)")]);
}

#[test]
fn tsx_is_told_by_the_extension_in_any_case() {
    let src = "function App() {\n  return <div>{/* TODO: label */}</div>;\n}\n";
    assert_eq!(contexts("App.TSX", src), [ctx(2, (1, 3), "function App()")]);
    // JSX parses cleanly only with the TSX grammar.
    for path in ["App.tsx", "App.TSX", "App.Tsx"] {
        assert_eq!(
            syntax_errors("typescript", path, src, 0..0).map(|e| e.count),
            Some(0)
        );
    }
    assert_ne!(
        syntax_errors("typescript", "App.ts", src, 0..0).map(|e| e.count),
        Some(0)
    );
}

#[test]
fn a_cpp_header_named_dot_h_is_read_as_cpp() {
    // `.h` belongs to C in the language table, but half the headers out there are C++.
    let src = "class Buf {\npublic:\n    int size() const {\n        // TODO: cache it\n        return n;\n    }\n};\n";
    assert_eq!(contexts("buf.h", src), [ctx(4, (3, 6), "int size() const")]);
    assert_eq!(
        syntax_errors("c", "buf.h", src, 0..0).map(|e| e.count),
        Some(0)
    );
    assert_ne!(
        syntax_errors("c", "buf.c", src, 0..0).map(|e| e.count),
        Some(0)
    );
    // A plain C header keeps the C grammar (both parse it cleanly; C is tried first).
    let c = "/* TODO: document */\nint add(int a, int b) {\n    return a + b;\n}\n";
    assert_eq!(
        contexts("add.h", c),
        [ctx(1, (1, 4), "int add(int a, int b)")]
    );
}
