//! The language table. Everything the lexer knows about a language is data here, so adding a
//! language means adding a row, not writing another lexer.

/// How a line-comment opener must be placed to count, for languages where the opener character
/// also has a non-comment meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentRule {
    /// The opener always starts a comment outside strings.
    Anywhere,
    /// Shell-style: only at line start or after whitespace or `;`, so `$#` and `${#x}` stay code.
    WordStart,
    /// Not when the previous byte is one of these (Perl's `$#array`).
    NotAfter(&'static [u8]),
    /// Not when the next byte is one of these (PHP 8 attributes `#[...]`).
    NotBefore(&'static [u8]),
}

/// A line comment opener and the rule deciding when it really opens a comment.
#[derive(Debug, Clone, Copy)]
pub struct LineComment {
    pub open: &'static str,
    pub rule: CommentRule,
}

/// A block comment; `nests` for Rust, Swift, Kotlin, Scala and Haskell where an inner opener must
/// be matched before the outer closer counts; `line_start` for Ruby's `=begin`/`=end` and Perl's
/// POD, which only count at column 0.
#[derive(Debug, Clone, Copy)]
pub struct BlockComment {
    pub open: &'static str,
    pub close: &'static str,
    pub nests: bool,
    pub line_start: bool,
}

/// Whether a backslash protects the next byte inside a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Backslash,
    /// Raw strings and languages that double the quote instead (`''` in SQL): doubling needs no
    /// special case because closing and reopening lands in the same place.
    None,
}

/// Plain strings run to their closer; char literals are only taken when they are complete and
/// short, because the same quote is also a Rust lifetime, a Haskell prime or a C++ digit separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringKind {
    Plain,
    Char,
    /// Python's triple-quoted string: documentation, searched like a comment, when it is a
    /// statement of its own (the docstring of a module, class or function, or a bare string
    /// used as a multi-line comment); a plain string anywhere else (`x = """..."""`, an
    /// argument).
    Docstring,
}

/// One string literal syntax. Openers are tried in table order, so longer ones (`"""`) come first.
#[derive(Debug, Clone, Copy)]
pub struct StringLiteral {
    pub open: &'static str,
    pub close: &'static str,
    pub escape: Escape,
    /// Single-line strings end at a newline even when unterminated, which confines the damage of
    /// a quote the lexer misread (a regex, an apostrophe in YAML prose) to one line.
    pub multiline: bool,
    pub kind: StringKind,
    /// The opener does not count right after an identifier character (`don't` in YAML, `r"` in
    /// `bar"`).
    pub needs_boundary: bool,
}

/// Comment and string syntax of one language, as the lexer and block finder need it.
#[derive(Debug)]
pub struct Language {
    pub name: &'static str,
    /// Lower-case extensions without the dot.
    pub extensions: &'static [&'static str],
    /// Exact file names for extension-less conventions (`Makefile`, `Dockerfile`).
    pub file_names: &'static [&'static str],
    /// Interpreter names accepted in a shebang, version suffixes stripped (`python3` -> `python`).
    pub interpreters: &'static [&'static str],
    pub line_comments: &'static [LineComment],
    pub block_comments: &'static [BlockComment],
    pub strings: &'static [StringLiteral],
    /// `<<EOF` here-documents: their bodies are prose where a stray apostrophe must not open a
    /// string that swallows the rest of the file.
    pub heredocs: bool,
    /// `name:` alone on a line is a goto label or an access specifier (`public:`), outdented by
    /// convention; the block finder must not read it as the end or start of a scope. Off for
    /// Python and YAML, where that same line does open a scope.
    pub labels: bool,
}

const fn plain(open: &'static str, close: &'static str, multiline: bool) -> StringLiteral {
    StringLiteral {
        open,
        close,
        escape: Escape::Backslash,
        multiline,
        kind: StringKind::Plain,
        needs_boundary: false,
    }
}

const fn raw(open: &'static str, close: &'static str, multiline: bool) -> StringLiteral {
    StringLiteral {
        open,
        close,
        escape: Escape::None,
        multiline,
        kind: StringKind::Plain,
        needs_boundary: false,
    }
}

const fn docstring(quotes: &'static str) -> StringLiteral {
    StringLiteral {
        kind: StringKind::Docstring,
        ..plain(quotes, quotes, true)
    }
}

const fn bounded(mut s: StringLiteral) -> StringLiteral {
    s.needs_boundary = true;
    s
}

const CHAR: StringLiteral = StringLiteral {
    open: "'",
    close: "'",
    escape: Escape::Backslash,
    multiline: false,
    kind: StringKind::Char,
    needs_boundary: true,
};

const fn line(open: &'static str) -> LineComment {
    LineComment {
        open,
        rule: CommentRule::Anywhere,
    }
}

const fn block(open: &'static str, close: &'static str, nests: bool) -> BlockComment {
    BlockComment {
        open,
        close,
        nests,
        line_start: false,
    }
}

/// `\//` is never a comment but is common in JavaScript regexes (`/https?:\/\//`).
const SLASHES: &[LineComment] = &[LineComment {
    open: "//",
    rule: CommentRule::NotAfter(b"\\"),
}];
const HASH: &[LineComment] = &[line("#")];
const HASH_WORD: &[LineComment] = &[LineComment {
    open: "#",
    rule: CommentRule::WordStart,
}];
const DASHES: &[LineComment] = &[line("--")];
const C_BLOCK: &[BlockComment] = &[block("/*", "*/", false)];
const NESTED_BLOCK: &[BlockComment] = &[block("/*", "*/", true)];
const NONE_LINE: &[LineComment] = &[];
const NONE_BLOCK: &[BlockComment] = &[];
const NONE_STR: &[StringLiteral] = &[];

const C_STRINGS: &[StringLiteral] = &[plain("\"", "\"", false), CHAR];
const JS_STRINGS: &[StringLiteral] = &[
    plain("\"", "\"", false),
    plain("'", "'", false),
    plain("`", "`", true),
];
const QUOTES: &[StringLiteral] = &[plain("\"", "\"", false), plain("'", "'", false)];

/// Every language the scanner understands, in no particular order.
pub static LANGUAGES: &[Language] = &[
    Language {
        name: "rust",
        extensions: &["rs"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: NESTED_BLOCK,
        strings: &[
            bounded(raw("br##\"", "\"##", true)),
            bounded(raw("br#\"", "\"#", true)),
            bounded(raw("br\"", "\"", true)),
            bounded(raw("r##\"", "\"##", true)),
            bounded(raw("r#\"", "\"#", true)),
            bounded(raw("r\"", "\"", true)),
            plain("\"", "\"", true),
            StringLiteral { open: "b'", ..CHAR },
            CHAR,
        ],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "python",
        extensions: &["py", "pyi", "pyw"],
        file_names: &[],
        interpreters: &["python", "pypy"],
        line_comments: HASH,
        block_comments: NONE_BLOCK,
        strings: &[
            docstring("\"\"\""),
            docstring("'''"),
            plain("\"", "\"", false),
            plain("'", "'", false),
        ],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "javascript",
        extensions: &["js", "mjs", "cjs", "jsx"],
        file_names: &[],
        interpreters: &["node", "nodejs"],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: JS_STRINGS,
        heredocs: false,
        labels: false,
    },
    Language {
        name: "typescript",
        extensions: &["ts", "tsx", "mts", "cts"],
        file_names: &[],
        interpreters: &["deno", "ts-node"],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: JS_STRINGS,
        heredocs: false,
        labels: false,
    },
    Language {
        name: "go",
        extensions: &["go"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: &[plain("\"", "\"", false), raw("`", "`", true), CHAR],
        heredocs: false,
        labels: true,
    },
    Language {
        name: "c",
        extensions: &["c", "h"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: C_STRINGS,
        heredocs: false,
        labels: true,
    },
    Language {
        name: "cpp",
        extensions: &[
            "cc", "cpp", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "inl",
        ],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: &[
            bounded(raw("R\"(", ")\"", true)),
            plain("\"", "\"", false),
            CHAR,
        ],
        heredocs: false,
        labels: true,
    },
    Language {
        name: "java",
        extensions: &["java"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: &[
            plain("\"\"\"", "\"\"\"", true),
            plain("\"", "\"", false),
            CHAR,
        ],
        heredocs: false,
        labels: true,
    },
    Language {
        name: "kotlin",
        extensions: &["kt", "kts"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: NESTED_BLOCK,
        strings: &[
            raw("\"\"\"", "\"\"\"", true),
            plain("\"", "\"", false),
            CHAR,
        ],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "swift",
        extensions: &["swift"],
        file_names: &[],
        interpreters: &["swift"],
        line_comments: SLASHES,
        block_comments: NESTED_BLOCK,
        strings: &[
            raw("#\"\"\"", "\"\"\"#", true),
            raw("#\"", "\"#", false),
            plain("\"\"\"", "\"\"\"", true),
            plain("\"", "\"", false),
        ],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "csharp",
        extensions: &["cs", "csx"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: &[
            raw("\"\"\"", "\"\"\"", true),
            raw("$@\"", "\"", true),
            raw("@$\"", "\"", true),
            raw("@\"", "\"", true),
            plain("\"", "\"", false),
            CHAR,
        ],
        heredocs: false,
        labels: true,
    },
    Language {
        name: "scala",
        extensions: &["scala", "sc"],
        file_names: &[],
        interpreters: &["scala"],
        line_comments: SLASHES,
        block_comments: NESTED_BLOCK,
        strings: &[
            raw("\"\"\"", "\"\"\"", true),
            plain("\"", "\"", false),
            CHAR,
        ],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "php",
        extensions: &["php", "phtml"],
        file_names: &[],
        interpreters: &["php"],
        line_comments: &[
            line("//"),
            LineComment {
                open: "#",
                rule: CommentRule::NotBefore(b"["),
            },
        ],
        block_comments: C_BLOCK,
        strings: QUOTES,
        heredocs: true,
        labels: true,
    },
    Language {
        name: "ruby",
        extensions: &["rb", "rake", "gemspec", "ru"],
        file_names: &["Rakefile", "Gemfile", "Guardfile", "Vagrantfile"],
        interpreters: &["ruby"],
        line_comments: HASH,
        block_comments: &[BlockComment {
            open: "=begin",
            close: "=end",
            nests: false,
            line_start: true,
        }],
        strings: QUOTES,
        heredocs: true,
        labels: false,
    },
    Language {
        name: "shell",
        extensions: &["sh", "bash", "zsh", "ksh", "dash"],
        file_names: &[".bashrc", ".zshrc", ".profile", ".bash_profile"],
        interpreters: &["sh", "bash", "zsh", "dash", "ksh", "ash"],
        line_comments: HASH_WORD,
        block_comments: NONE_BLOCK,
        strings: &[plain("\"", "\"", true), raw("'", "'", true)],
        heredocs: true,
        labels: false,
    },
    Language {
        name: "perl",
        extensions: &["pl", "pm", "t"],
        file_names: &[],
        interpreters: &["perl"],
        line_comments: &[LineComment {
            open: "#",
            rule: CommentRule::NotAfter(b"$"),
        }],
        block_comments: &[
            BlockComment {
                open: "=pod",
                close: "=cut",
                nests: false,
                line_start: true,
            },
            BlockComment {
                open: "=head",
                close: "=cut",
                nests: false,
                line_start: true,
            },
            BlockComment {
                open: "=begin",
                close: "=cut",
                nests: false,
                line_start: true,
            },
        ],
        strings: QUOTES,
        heredocs: true,
        labels: false,
    },
    Language {
        name: "yaml",
        extensions: &["yml", "yaml"],
        file_names: &[],
        interpreters: &[],
        line_comments: HASH_WORD,
        block_comments: NONE_BLOCK,
        strings: &[
            bounded(plain("\"", "\"", false)),
            bounded(raw("'", "'", false)),
        ],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "toml",
        extensions: &["toml"],
        file_names: &[],
        interpreters: &[],
        line_comments: HASH,
        block_comments: NONE_BLOCK,
        strings: &[
            plain("\"\"\"", "\"\"\"", true),
            raw("'''", "'''", true),
            plain("\"", "\"", false),
            raw("'", "'", false),
        ],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "sql",
        extensions: &["sql"],
        file_names: &[],
        interpreters: &[],
        line_comments: DASHES,
        block_comments: C_BLOCK,
        strings: &[raw("'", "'", true), raw("\"", "\"", true)],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "lua",
        extensions: &["lua"],
        file_names: &[],
        interpreters: &["lua", "luajit"],
        line_comments: DASHES,
        block_comments: &[block("--[==[", "]==]", false), block("--[[", "]]", false)],
        strings: &[
            raw("[==[", "]==]", true),
            raw("[[", "]]", true),
            plain("\"", "\"", false),
            plain("'", "'", false),
        ],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "haskell",
        extensions: &["hs"],
        file_names: &[],
        interpreters: &["runhaskell", "runghc"],
        line_comments: DASHES,
        block_comments: &[block("{-", "-}", true)],
        strings: &[plain("\"", "\"", false), CHAR],
        heredocs: false,
        labels: false,
    },
    Language {
        name: "css",
        extensions: &["css"],
        file_names: &[],
        interpreters: &[],
        line_comments: NONE_LINE,
        block_comments: C_BLOCK,
        strings: QUOTES,
        heredocs: false,
        labels: false,
    },
    Language {
        name: "scss",
        extensions: &["scss", "less"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: QUOTES,
        heredocs: false,
        labels: false,
    },
    Language {
        name: "html",
        extensions: &["html", "htm", "xhtml", "vue", "svelte"],
        file_names: &[],
        interpreters: &[],
        line_comments: NONE_LINE,
        block_comments: &[block("<!--", "-->", false)],
        // Prose apostrophes would open strings; attribute values rarely hide comment openers.
        strings: NONE_STR,
        heredocs: false,
        labels: false,
    },
    Language {
        name: "xml",
        extensions: &[
            "xml", "xsd", "xsl", "xslt", "svg", "plist", "csproj", "props",
        ],
        file_names: &[],
        interpreters: &[],
        line_comments: NONE_LINE,
        block_comments: &[block("<!--", "-->", false)],
        strings: NONE_STR,
        heredocs: false,
        labels: false,
    },
    Language {
        name: "make",
        extensions: &["mk", "mak"],
        file_names: &["Makefile", "makefile", "GNUmakefile"],
        interpreters: &["make"],
        line_comments: &[LineComment {
            open: "#",
            rule: CommentRule::NotAfter(b"\\"),
        }],
        block_comments: NONE_BLOCK,
        strings: NONE_STR,
        heredocs: false,
        labels: false,
    },
    Language {
        name: "dockerfile",
        extensions: &["dockerfile"],
        file_names: &["Dockerfile", "Containerfile"],
        interpreters: &[],
        line_comments: HASH_WORD,
        block_comments: NONE_BLOCK,
        strings: NONE_STR,
        heredocs: false,
        labels: false,
    },
];

/// Language by file name or extension, else by shebang; extension wins because a shebang in a
/// `.py` file cannot make it anything but Python.
pub fn detect_language(path: &str, first_line: &str) -> Option<&'static Language> {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    if let Some(lang) = LANGUAGES.iter().find(|l| l.file_names.contains(&name)) {
        return Some(lang);
    }
    if let Some((stem, ext)) = name.rsplit_once('.')
        && !stem.is_empty()
    {
        let ext = ext.to_ascii_lowercase();
        if let Some(lang) = LANGUAGES
            .iter()
            .find(|l| l.extensions.contains(&ext.as_str()))
        {
            return Some(lang);
        }
    }
    // `Dockerfile.dev`, `Makefile.inc`: the convention is in the stem.
    if let Some((stem, _)) = name.split_once('.')
        && let Some(lang) = LANGUAGES.iter().find(|l| l.file_names.contains(&stem))
    {
        return Some(lang);
    }
    let interpreter = shebang_interpreter(first_line)?;
    LANGUAGES
        .iter()
        .find(|l| l.interpreters.contains(&interpreter))
}

/// `#!/usr/bin/env -S python3.11 -u` -> `python`.
fn shebang_interpreter(first_line: &str) -> Option<&str> {
    let rest = first_line
        .trim_start_matches('\u{feff}')
        .strip_prefix("#!")?;
    let mut words = rest.split_whitespace();
    let mut program = basename(words.next()?);
    if program == "env" {
        program = basename(words.find(|w| !w.starts_with('-') && !w.contains('='))?);
    }
    let trimmed = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    Some(if trimmed.is_empty() { program } else { trimmed })
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
