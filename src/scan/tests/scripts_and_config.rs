//! Lexing of PHP, Ruby, Perl, shell, and the config, query and markup languages (YAML to XML).

use super::*;

#[test]
fn php_ruby_perl() {
    let php = "<?php\n#[Attribute]\n$a = 'TODO';\n# TODO: hash\n// FIXME: slashes\n";
    let todos = scan("a.php", php);
    let got: Vec<_> = todos.iter().map(|t| (t.line, t.tag.as_str())).collect();
    assert_eq!(got, [(4, "TODO"), (5, "FIXME")]);

    let rb = "def f\n  s = \"TODO\"\n  # TODO: ruby\nend\n=begin\nFIXME: in block\n=end\n";
    let todos = scan("a.rb", rb);
    assert_eq!(todos.len(), 2);
    assert_eq!((todos[0].line, todos[0].text.as_str()), (3, "ruby"));
    assert_eq!(todos[0].block_lines, (1, 4));
    assert_eq!((todos[1].line, todos[1].text.as_str()), (6, "in block"));

    let pl = "my $n = $#array;\nmy $s = 'TODO';\n# TODO: perl\n";
    check("a.pl", pl, 3, "TODO", "perl");
}

#[test]
fn shell_dollar_hash_quotes_and_heredocs() {
    let src = "#!/bin/bash
n=$#
len=${#name}
s='TODO: single quoted # not a comment'
cat <<EOF
don't # TODO: inside a heredoc
EOF
echo \"TODO\"; # FIXME: real one
";
    let t = check("run.sh", src, 8, "FIXME", "real one");
    assert_eq!(t.language, "shell");
    let todos = scan("script", src);
    assert_eq!(todos.len(), 1, "shebang detection");
    assert_eq!(todos[0].language, "shell");
}

#[test]
fn config_and_query_languages() {
    // The apostrophe in `it's` must not open a string that hides the comment after it.
    let yaml = "key: \"TODO\"\nurl: http://x/#TODO\n# TODO: yaml\nit's: fine # FIXME later\n";
    let todos = scan("a.yaml", yaml);
    let got: Vec<_> = todos
        .iter()
        .map(|t| (t.line, t.tag.as_str(), t.text.as_str()))
        .collect();
    assert_eq!(got, [(3, "TODO", "yaml"), (4, "FIXME", "later")]);
    check("a.toml", "a = \"TODO\"\n# TODO: toml\n", 2, "TODO", "toml");
    check(
        "a.sql",
        "SELECT 'TODO' -- TODO: sql\nFROM t;\n",
        1,
        "TODO",
        "sql",
    );
    let lua = "local s = [[TODO]]\n--[[ multi\nTODO: lua block ]]\n";
    check("a.lua", lua, 3, "TODO", "lua block");
    check(
        "a.hs",
        "x = \"TODO\"\n{- a {- b -} TODO: haskell -}\n",
        2,
        "TODO",
        "haskell",
    );
    check(
        "a.css",
        "a { content: \"TODO\"; } /* TODO: css */\n",
        1,
        "TODO",
        "css",
    );
    check(
        "a.html",
        "<p>don't TODO here</p>\n<!-- TODO: html -->\n",
        2,
        "TODO",
        "html",
    );
    check(
        "a.xml",
        "<a>TODO</a>\n<!--\n  FIXME: xml\n-->\n",
        3,
        "FIXME",
        "xml",
    );
}
