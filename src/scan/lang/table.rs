//! The rows of the language table, built from a few shared comment and string shapes.

use super::{BlockComment, CommentRule, Escape, Language, LineComment, StringKind, StringLiteral};

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
        not_before: &[],
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
        display: "Rust",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "python",
        display: "Python",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "javascript",
        display: "JavaScript",
        extensions: &["js", "mjs", "cjs", "jsx"],
        file_names: &[],
        interpreters: &["node", "nodejs"],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: JS_STRINGS,
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "typescript",
        display: "TypeScript",
        extensions: &["ts", "tsx", "mts", "cts"],
        file_names: &[],
        interpreters: &["deno", "ts-node"],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: JS_STRINGS,
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "go",
        display: "Go",
        extensions: &["go"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: &[plain("\"", "\"", false), raw("`", "`", true), CHAR],
        heredocs: false,
        code_escapes: false,
        labels: true,
    },
    Language {
        name: "c",
        display: "C",
        extensions: &["c", "h"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: C_STRINGS,
        heredocs: false,
        code_escapes: false,
        labels: true,
    },
    Language {
        name: "cpp",
        display: "C++",
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
        code_escapes: false,
        labels: true,
    },
    Language {
        name: "java",
        display: "Java",
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
        code_escapes: false,
        labels: true,
    },
    Language {
        name: "kotlin",
        display: "Kotlin",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "swift",
        display: "Swift",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "csharp",
        display: "C#",
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
        code_escapes: false,
        labels: true,
    },
    Language {
        name: "scala",
        display: "Scala",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "php",
        display: "PHP",
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
        code_escapes: false,
        labels: true,
    },
    Language {
        name: "ruby",
        display: "Ruby",
        extensions: &["rb", "rake", "gemspec", "ru"],
        file_names: &["Rakefile", "Gemfile", "Guardfile", "Vagrantfile"],
        interpreters: &["ruby"],
        line_comments: HASH,
        block_comments: &[BlockComment {
            open: "=begin",
            close: "=end",
            nests: false,
            line_start: true,
            not_before: &[],
        }],
        strings: QUOTES,
        heredocs: true,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "shell",
        display: "Shell",
        extensions: &["sh", "bash", "zsh", "ksh", "dash"],
        file_names: &[".bashrc", ".zshrc", ".profile", ".bash_profile"],
        interpreters: &["sh", "bash", "zsh", "dash", "ksh", "ash"],
        line_comments: HASH_WORD,
        block_comments: NONE_BLOCK,
        strings: &[plain("\"", "\"", true), raw("'", "'", true)],
        heredocs: true,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "perl",
        display: "Perl",
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
                not_before: &[],
            },
            BlockComment {
                open: "=head",
                close: "=cut",
                nests: false,
                line_start: true,
                not_before: &[],
            },
            BlockComment {
                open: "=begin",
                close: "=cut",
                nests: false,
                line_start: true,
                not_before: &[],
            },
        ],
        strings: QUOTES,
        heredocs: true,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "yaml",
        display: "YAML",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "toml",
        display: "TOML",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "sql",
        display: "SQL",
        extensions: &["sql"],
        file_names: &[],
        interpreters: &[],
        line_comments: DASHES,
        block_comments: C_BLOCK,
        strings: &[raw("'", "'", true), raw("\"", "\"", true)],
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "lua",
        display: "Lua",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "haskell",
        display: "Haskell",
        extensions: &["hs"],
        file_names: &[],
        interpreters: &["runhaskell", "runghc"],
        line_comments: DASHES,
        block_comments: &[block("{-", "-}", true)],
        strings: &[plain("\"", "\"", false), CHAR],
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "css",
        display: "CSS",
        extensions: &["css"],
        file_names: &[],
        interpreters: &[],
        line_comments: NONE_LINE,
        block_comments: C_BLOCK,
        strings: QUOTES,
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "scss",
        display: "SCSS",
        extensions: &["scss", "less"],
        file_names: &[],
        interpreters: &[],
        line_comments: SLASHES,
        block_comments: C_BLOCK,
        strings: QUOTES,
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "html",
        display: "HTML",
        extensions: &["html", "htm", "xhtml", "vue", "svelte"],
        file_names: &[],
        interpreters: &[],
        line_comments: NONE_LINE,
        block_comments: &[block("<!--", "-->", false)],
        // Prose apostrophes would open strings; attribute values rarely hide comment openers.
        strings: NONE_STR,
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "xml",
        display: "XML",
        extensions: &[
            "xml", "xsd", "xsl", "xslt", "svg", "plist", "csproj", "props",
        ],
        file_names: &[],
        interpreters: &[],
        line_comments: NONE_LINE,
        block_comments: &[block("<!--", "-->", false)],
        strings: NONE_STR,
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "make",
        display: "Makefile",
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
        code_escapes: false,
        labels: false,
    },
    Language {
        name: "dockerfile",
        display: "Dockerfile",
        extensions: &["dockerfile"],
        file_names: &["Dockerfile", "Containerfile"],
        interpreters: &[],
        line_comments: HASH_WORD,
        block_comments: NONE_BLOCK,
        strings: NONE_STR,
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
    // `.m` is Objective-C's too: tokei's database has it so, and `refine` makes a `.m` file
    // MATLAB when its head reads like MATLAB (see `super::refine`). So no extension here.
    Language {
        name: "matlab",
        display: "MATLAB/Octave",
        extensions: &[],
        file_names: &[],
        interpreters: &["octave"],
        line_comments: &[line("%")],
        // `%{` and `%}` alone on their lines.
        block_comments: &[BlockComment {
            open: "%{",
            close: "%}",
            nests: true,
            line_start: true,
            not_before: &[],
        }],
        // Quotes are doubled, never escaped; `x'` is a transpose, not a string.
        strings: &[raw("\"", "\"", false), bounded(raw("'", "'", false))],
        heredocs: false,
        code_escapes: false,
        labels: false,
    },
];
