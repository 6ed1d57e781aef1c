//! Wildcard patterns (`*` any run, `?` one character) and the policy
//! variables (`${aws:username}`, the escapes `${*}`, `${?}`, `${$}`) that
//! fill parts of them in from the request at evaluation time.

use std::borrow::Cow;

use crate::conditions::canonical_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Char(char),
    AnyOne,
    AnyRun,
}

/// A pattern ready to match: every variable already replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(Vec<Token>);

impl Pattern {
    /// `*` and `?` are wildcards, everything else literal.
    pub(crate) fn wildcard(text: &str) -> Pattern {
        Pattern(text.chars().map(wildcard_token).collect())
    }

    /// `fold_case` compares characters by their lowercase forms (action
    /// names, the `IgnoreCase` operators).
    pub(crate) fn matches(&self, text: &str, fold_case: bool) -> bool {
        glob(&self.0, text, fold_case)
    }

    /// True for `arn:aws:s3:::*` and the like: a pattern that matches every S3
    /// resource, and so also the account-level resource `*` of
    /// ListAllMyBuckets or CreateBucket, which names no bucket.
    pub(crate) fn covers_all_s3(&self) -> bool {
        let prefix = crate::parse::S3_ARN_PREFIX;
        let prefix_len = prefix.chars().count();
        self.0.len() > prefix_len
            && self
                .0
                .iter()
                .zip(prefix.chars())
                .all(|(t, c)| *t == Token::Char(c))
            && self.0[prefix_len..].iter().all(|t| *t == Token::AnyRun)
    }
}

fn wildcard_token(c: char) -> Token {
    match c {
        '*' => Token::AnyRun,
        '?' => Token::AnyOne,
        c => Token::Char(c),
    }
}

fn chars_equal(pattern: char, text: char, fold_case: bool) -> bool {
    pattern == text || (fold_case && pattern.to_lowercase().eq(text.to_lowercase()))
}

/// Iterative matching with one backtrack point (the last `*`): linear memory,
/// O(pattern × text) time in the worst case, no recursion to exhaust the
/// stack whatever the policy holds. `s` only ever moves by whole
/// characters, so every `text[s..]` is on a character boundary.
fn glob(tokens: &[Token], text: &str, fold_case: bool) -> bool {
    let (mut t, mut s) = (0usize, 0usize);
    // After a `*`: the token following it, and where in the text that `*`'s
    // run currently ends.
    let mut retry: Option<(usize, usize)> = None;
    loop {
        let next = text[s..].chars().next();
        let advanced = match (tokens.get(t), next) {
            (Some(Token::AnyRun), _) => {
                retry = Some((t + 1, s));
                t += 1;
                continue;
            }
            (Some(Token::AnyOne), Some(c)) => Some(c),
            (Some(Token::Char(p)), Some(c)) if chars_equal(*p, c, fold_case) => Some(c),
            (None, None) => return true,
            _ => None,
        };
        if let Some(c) = advanced {
            t += 1;
            s += c.len_utf8();
            continue;
        }
        // Mismatch: let the last `*` swallow one more character.
        let Some((after_star, run_end)) = retry else {
            return false;
        };
        let Some(c) = text[run_end..].chars().next() else {
            return false;
        };
        let run_end = run_end + c.len_utf8();
        retry = Some((after_star, run_end));
        t = after_star;
        s = run_end;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Tokens(Vec<Token>),
    /// A condition key, lowercased, whose value is spliced in literally.
    Variable(String),
}

/// A Resource pattern or a string condition value as written in the policy,
/// with its policy variables still to be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    source: String,
    form: Form,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    /// No variables: compiled once at parse time.
    Fixed(Pattern),
    WithVariables(Vec<Part>),
}

impl Template {
    /// `wildcards`: whether `*` and `?` are wildcards (Resource, StringLike)
    /// or plain characters (StringEquals). `variables`: whether `${...}` is a
    /// policy variable (Version 2012-10-17) or plain text (2008-10-17).
    pub(crate) fn parse(
        source: &str,
        wildcards: bool,
        variables: bool,
    ) -> Result<Template, String> {
        let plain = |c: char| {
            if wildcards {
                wildcard_token(c)
            } else {
                Token::Char(c)
            }
        };
        if !variables || !source.contains("${") {
            return Ok(Template {
                source: source.to_string(),
                form: Form::Fixed(Pattern(source.chars().map(plain).collect())),
            });
        }
        let mut parts = Vec::new();
        let mut tokens = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("${") {
            tokens.extend(rest[..start].chars().map(plain));
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(format!("unterminated policy variable in \"{source}\""));
            };
            match &after[..end] {
                "*" | "?" | "$" => tokens.extend(after[..end].chars().map(Token::Char)),
                name => {
                    let key = canonical_key(name).ok_or_else(|| {
                        format!("invalid policy variable ${{{name}}} in \"{source}\"")
                    })?;
                    if !tokens.is_empty() {
                        parts.push(Part::Tokens(std::mem::take(&mut tokens)));
                    }
                    parts.push(Part::Variable(key));
                }
            }
            rest = &after[end + 1..];
        }
        tokens.extend(rest.chars().map(plain));
        let form = if parts.is_empty() {
            // Only escapes: nothing depends on the request.
            Form::Fixed(Pattern(tokens))
        } else {
            if !tokens.is_empty() {
                parts.push(Part::Tokens(tokens));
            }
            Form::WithVariables(parts)
        };
        Ok(Template {
            source: source.to_string(),
            form,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The pattern for this request, or None when a variable has no value
    /// in it: such a pattern matches nothing.
    pub(crate) fn resolve<'a, 'v>(
        &'a self,
        lookup: impl Fn(&str) -> Option<&'v str>,
    ) -> Option<Cow<'a, Pattern>> {
        match &self.form {
            Form::Fixed(pattern) => Some(Cow::Borrowed(pattern)),
            Form::WithVariables(parts) => {
                let mut tokens = Vec::new();
                for part in parts {
                    match part {
                        Part::Tokens(t) => tokens.extend_from_slice(t),
                        Part::Variable(key) => tokens.extend(lookup(key)?.chars().map(Token::Char)),
                    }
                }
                Some(Cow::Owned(Pattern(tokens)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob_str(pattern: &str, text: &str) -> bool {
        Pattern::wildcard(pattern).matches(text, false)
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(glob_str("*", ""));
        assert!(glob_str("*", "anything/at/all"));
        assert!(glob_str("a*c", "abbbc"));
        assert!(glob_str("a*c", "ac"));
        assert!(!glob_str("a*c", "acb"));
        assert!(glob_str("a?c", "abc"));
        assert!(!glob_str("a?c", "ac"));
        assert!(glob_str("?", "é"), "? is one character, not one byte");
        assert!(glob_str("*log*", "arn:aws:s3:::x-logs/k"));
        assert!(glob_str("a*b*c", "a-b-b-c"));
        assert!(!glob_str("a*b*c", "a-c-b"));
        assert!(!glob_str("abc", "ABC"));
        assert!(Pattern::wildcard("s3:get*").matches("S3:GetObject", true));
    }

    #[test]
    fn a_long_adversarial_pattern_ends() {
        let pattern = "*a".repeat(2000);
        let text = "a".repeat(1999);
        assert!(!glob_str(&pattern, &text));
    }

    #[test]
    fn variables_are_spliced_in_literally() {
        let t = Template::parse("home/${aws:username}/*", true, true).unwrap();
        let p = t.resolve(|_| Some("a*b")).unwrap();
        assert!(p.matches("home/a*b/x", false));
        assert!(
            !p.matches("home/aXb/x", false),
            "a * in a value is no wildcard"
        );
        assert!(t.resolve(|_| None).is_none());
    }

    #[test]
    fn escapes_are_literal_characters() {
        let t = Template::parse("a${*}b${?}${$}", true, true).unwrap();
        let p = t.resolve(|_| None).unwrap();
        assert!(p.matches("a*b?$", false));
        assert!(!p.matches("aXbY$", false));
    }

    #[test]
    fn version_2008_keeps_variables_as_text() {
        let t = Template::parse("${aws:username}", false, false).unwrap();
        assert!(t
            .resolve(|_| Some("bob"))
            .unwrap()
            .matches("${aws:username}", false));
    }

    #[test]
    fn covers_all_s3_only_for_pure_stars_after_the_prefix() {
        assert!(Pattern::wildcard("arn:aws:s3:::*").covers_all_s3());
        assert!(Pattern::wildcard("arn:aws:s3:::**").covers_all_s3());
        assert!(!Pattern::wildcard("arn:aws:s3:::*/*").covers_all_s3());
        assert!(!Pattern::wildcard("arn:aws:s3:::b*").covers_all_s3());
        assert!(!Pattern::wildcard("arn:aws:s3:::").covers_all_s3());
    }
}
