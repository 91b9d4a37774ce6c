// The re2 → JavaScript translation of linkifier patterns, the RFC 6570 expansion of their URL
// templates and topic_links, against Zulip's own expectations (zerver/tests/test_markdown.py:
// test_realm_patterns, test_multiple_matching_realm_patterns, test_topic_links_ordering_by_priority,
// test_links_and_linkifiers_in_topic_name, test_realm_patterns_negative) and the RFC 6570
// examples the uri_template library reproduces (section 3.2 and 1.2, level 4 operators on strings).
import { describe, expect, it } from "vitest";
import {
  expandUriTemplate,
  type Linkifier,
  linkifierMatching,
  parseUriTemplate,
  prepareLinkifierRegex,
  topicLinks,
  translateRe2,
} from "../src/zulip/linkifiers.js";

/** Linkifiers in order, as do_add_linkifier numbers them. */
const linkifiers = (...ls: [string, string][]): Linkifier[] => ls.map(([pattern, urlTemplate], i) => ({ id: i + 1, pattern, urlTemplate, order: i }));
const links = (ls: Linkifier[], topic: string) => {
  const r = topicLinks(ls, topic);
  if ("why" in r) throw new Error(r.why);
  return r.links;
};

describe("re2 patterns translated to JavaScript", () => {
  it.each([
    ["#(?P<id>[0-9]{2,8})", "\\u{23}(?<id>[0-9]{2,8})"],
    ["(?P<org>\\w+)/(?P<repo>\\w+)", "(?<org>[0-9A-Z\\u{5f}a-z]+)\\u{2f}(?<repo>[0-9A-Z\\u{5f}a-z]+)"],
    ["a.b", "a[^\\n]b"],
    ["\\s\\S", "[\\u{9}-\\u{a}\\u{c}-\\u{d}\\u{20}][\\u{0}-\\u{8}\\u{b}\\u{e}-\\u{1f}\\u{21}-\\u{10ffff}]"],
    ["\\pL\\p{Greek}\\PN\\p{^Lu}", "[\\p{L}][\\p{Script=Greek}][\\P{N}][\\P{Lu}]"],
    ["[]a-]", "[\\u{5d}a\\u{2d}]"],
    ["[\\d-z]", "[0-9\\u{2d}z]"],
    ["x{2,}y{,3}", "x{2,}y\\u{7b}\\u{2c}3\\u{7d}"],
    ["(?:ab)+?c", "(?:ab)+?c"],
    ["(?P<a>x)?", "(?<a>x)?"],
    ["\\x{1F600}\\.", "\\u{1f600}\\u{2e}"],
    ["\\Aa\\z", "^a$"],
  ])("%s", (re2, js) => {
    expect(translateRe2(re2)).toEqual({ ok: true, source: js, groupNames: expect.any(Array) });
  });

  it.each([
    ["(?x)a", "unknown (? construct"],
    ["(?i-)a", "unknown (? construct"],
    ["(?-)a", "unknown (? construct"],
    ["a(?i)*", "empty string"],
    ["(?i)[a\\PL]", "negated Unicode class among other items"],
    ["[[:alpha:]]", "POSIX"],
    ["\\Qa.b\\E", "escape \\Q"],
    ["\\C", "escape \\C"],
    ["(?:(?P<a>x)|y)+", "capturing group inside a repetition"],
    ["(?:a*)*", "empty string"],
    ["(?:a|b)*", "alternatives"],
    ["(?:a+)+b", "alternatives or of another repetition"],
    ["a**", "stacked"],
    ["*a", "nothing to repeat"],
    ["a{1001}", "repetition count"],
    ["(?=a)", "unknown (? construct"],
    ["\\1", "escape \\1"],
    ["\\pC", "Unicode class"],
    ["\\p{Klingon}", "Unicode class"],
    ["(?P<1a>x)", "group name"],
    ["(?P<a>x)(?P<a>y)", "used twice"],
    ["(?P<linkifier_actual_match>x)", "used twice"],
    ["a)", "unmatched )"],
    ["(a", "unclosed ("],
    ["[a", "unclosed ["],
    ["[z-a]", "reversed"],
  ])("%s is refused", (re2, why) => {
    const t = translateRe2(re2);
    expect(t.ok).toBe(false);
    if (!t.ok) expect(t.why).toContain(why);
  });

  it("prepare_linkifier_pattern: after the start, ASCII whitespace, NEL, \\pZ or an opening delimiter; not before a letter or digit", () => {
    const p = prepareLinkifierRegex("#(?P<id>[0-9]+)");
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    const test = (s: string) => ((p.regex.lastIndex = 0), p.regex.test(s));
    expect(["#1", " #1 ", "\u0085#1", "\u00a0#1", "\u3000#1", "(#1)", '"#1"', ",#1", ":#1", "<#1", "'#1"].map(test)).toEqual(Array(11).fill(true));
    // re2's \s is ASCII: a vertical tab is not whitespace (it is not \pZ either); a letter after the match stops it.
    expect(["\u000b#1", "a#1", "#1a", "#1é", "#1٣"].map(test)).toEqual([false, false, false, false, false]);
  });
});

describe("RFC 6570 expansion (uri_template 1.3)", () => {
  const vars = { var: "value", hello: "Hello World!", path: "/foo/bar", x: "1024", y: "768", empty: "", who: "fred", base: "http://example.com/home/" };
  const expand = (t: string, values: Record<string, string | undefined> = vars) => {
    const p = parseUriTemplate(t);
    if (!p.ok) throw new Error(p.why);
    return expandUriTemplate(p.parts, values);
  };
  it.each([
    ["{var}", "value"],
    ["{hello}", "Hello%20World%21"],
    ["{+var}", "value"],
    ["{+hello}", "Hello%20World!"],
    ["{+path}/here", "/foo/bar/here"],
    ["here?ref={+path}", "here?ref=/foo/bar"],
    ["{#var}", "#value"],
    ["{#hello}", "#Hello%20World!"],
    ["map?{x,y}", "map?1024,768"],
    ["{x,hello,y}", "1024,Hello%20World%21,768"],
    ["{+x,hello,y}", "1024,Hello%20World!,768"],
    ["{+path,x}/here", "/foo/bar,1024/here"],
    ["{#x,hello,y}", "#1024,Hello%20World!,768"],
    ["{#path,x}/here", "#/foo/bar,1024/here"],
    ["X{.var}", "X.value"],
    ["X{.x,y}", "X.1024.768"],
    ["{/var}", "/value"],
    ["{/var,x}/here", "/value/1024/here"],
    ["{;x,y}", ";x=1024;y=768"],
    ["{;x,y,empty}", ";x=1024;y=768;empty"],
    ["{?x,y}", "?x=1024&y=768"],
    ["{?x,y,empty}", "?x=1024&y=768&empty="],
    ["?fixed=yes{&x}", "?fixed=yes&x=1024"],
    ["{&x,y,empty}", "&x=1024&y=768&empty="],
    ["{var:3}", "val"],
    ["{var:30}", "value"],
    ["{+path:6}/here", "/foo/b/here"],
    ["{#path:6}/here", "#/foo/b/here"],
    ["X{.var:3}", "X.val"],
    ["{/var:1,var}", "/v/value"],
    ["{;hello:5}", ";hello=Hello"],
    ["{?var:3}", "?var=val"],
    ["{&var:3}", "&var=val"],
    ["{var*}", "value"],
    ["{;var*}", ";var=value"],
    ["{?var*}", "?var=value"],
    ["{/who,who}", "/fred/fred"],
    ["{+base}index", "http://example.com/home/index"],
    ["{undef}x{?undef}", "x"],
    // Zulip's test: %XX triplets in the literal parts are kept, other % are encoded.
    ["https://example.com/A%20Test/%%%ba/{x}", "https://example.com/A%20Test/%25%25%ba/1024"],
    // Non-ASCII: UTF-8, upper-case hex; a space in the literal text is encoded.
    ["https://x.test/a b/{v}", "https://x.test/a%20b/%C3%A9t%C3%A9"],
  ])("%s", (t, expected) => {
    expect(expand(t, { ...vars, v: "été" })).toBe(expected);
  });

  it.each(["{x=1}", "{x[]}", "{,x}", "{x,}", "{=x}", "{x.y}", "{}", "a}b", "{x:0}", "{x:1000}"])("%s is refused", (t) => {
    expect(parseUriTemplate(t).ok).toBe(false);
  });
});

describe("topic_links", () => {
  it("test_realm_patterns", () => {
    const trac = linkifiers(["#(?P<id>[0-9]{2,8})", "https://trac.example.com/ticket/{id}"]);
    expect(links(trac, "#444")).toEqual([{ url: "https://trac.example.com/ticket/444", text: "#444" }]);
    expect(links(trac, "#444 #555 #666").map((l) => l.text)).toEqual(["#444", "#555", "#666"]);
    const two = linkifiers(
      ["#(?P<id>[0-9]{2,8})", "https://trac.example.com/ticket/{id}"],
      ["#(?P<id>[a-zA-Z]+-[0-9]+)", "https://trac.example.com/ticket/{id}"],
    );
    const one = [{ url: "https://trac.example.com/ticket/123", text: "#123" }];
    for (const t of ["Hello #123 World", "Hello\u00a0#123\u00a0World", "チケットは #123 です", "(#123)", "#123>", '"#123"', "#123@"])
      expect(links(two, t), t).toEqual(one);
    for (const t of [
      "Hello #123World",
      "Hello#123 World",
      "Hello#123World",
      "チケットは#123です",
      "チケットは #123です",
      "チケットは#123 です",
      ")#123(",
      "##123",
    ])
      expect(links(two, t), t).toEqual([]);
    const three = [...two, { id: 3, pattern: "hello#(?P<id>[0-9]+)", urlTemplate: "https://trac.example.com/hello/{id}", order: 2 }];
    expect(links(three, "hello#123 #234")).toEqual([
      { url: "https://trac.example.com/hello/123", text: "hello#123" },
      { url: "https://trac.example.com/ticket/234", text: "#234" },
    ]);
    const escaped = [...three, { id: 4, pattern: "url-(?P<id>[0-9]+)", urlTemplate: "https://example.com/A%20Test/%%%ba/{id}", order: 3 }];
    expect(links(escaped, "url-123 is well-escaped")).toEqual([{ url: "https://example.com/A%20Test/%25%25%ba/123", text: "url-123" }]);
  });

  it("test_multiple_matching_realm_patterns", () => {
    const ls = linkifiers(
      ["(?P<id>ABC-[0-9]+)", "https://trac.example.com/ticket/{id}"],
      ["(?P<id>[A-Z][A-Z0-9]*-[0-9]+)", "https://other-trac.example.com/ticket/{id}"],
      ["(?P<id>[A-Z][A-Z0-9]+)", "https://yet-another-trac.example.com/ticket/{id}"],
    );
    expect(links(ls, "ABC-123")).toEqual([{ url: "https://trac.example.com/ticket/ABC-123", text: "ABC-123" }]);
    expect(links(ls, "ASD-123 ABC-123 QWE")).toEqual([
      { url: "https://other-trac.example.com/ticket/ASD-123", text: "ASD-123" },
      { url: "https://trac.example.com/ticket/ABC-123", text: "ABC-123" },
      { url: "https://yet-another-trac.example.com/ticket/QWE", text: "QWE" },
    ]);
  });

  it("test_topic_links_ordering_by_priority (linkifier part: the topic without its raw URL)", () => {
    const ls = linkifiers(
      ["http", "http://example.com/"],
      ["b#(?P<id>[a-z]+)", "http://example.com/b/{id}"],
      ["a#(?P<aid>[a-z]+) b#(?P<bid>[a-z]+)", "http://example.com/a/{aid}/b/{bid}"],
      ["a#(?P<id>[a-z]+)", "http://example.com/a/{id}"],
    );
    expect(links(ls, "http a#asd b#bar")).toEqual([
      { text: "http", url: "http://example.com/" },
      { text: "a#asd", url: "http://example.com/a/asd" },
      { text: "b#bar", url: "http://example.com/b/bar" },
    ]);
  });

  it("test_links_and_linkifiers_in_topic_name: precedence before position; `.` and the resumed search", () => {
    const ls = linkifiers(["ABC-42", "https://google.com"], ["com.+(?P<id>ABC\\-[0-9]+)", "https://trac.example.com/ticket/{id}"]);
    expect(links(ls, "com ABC-42")).toEqual([{ url: "https://google.com", text: "ABC-42" }]);
    expect(links(ls, "com x ABC-7")).toEqual([{ url: "https://trac.example.com/ticket/ABC-7", text: "com x ABC-7" }]);
  });

  it("test_realm_patterns_negative; the notices' topics", () => {
    expect(links(linkifiers(["#(?P<id>[0-9]{2,8})", "https://trac.example.com/ticket/{id}"]), "no match here")).toEqual([]);
    const word = linkifiers(["(?P<word>channel)", "https://example.com/w/{word}{?x}"]);
    expect(links(word, "channel events")).toEqual([{ url: "https://example.com/w/channel", text: "channel" }]);
    expect(links(word, "")).toEqual([]);
  });

  it("refuses what it cannot reproduce: untranslatable patterns, templates of matching linkifiers, equal orders that both match, endless searches", () => {
    expect(topicLinks(linkifiers(["(?x)x", "https://a.test/"]), "anything")).toEqual({ why: expect.stringContaining('"(?x)x"') });
    // A template it does not expand only matters when its linkifier matches.
    expect(topicLinks(linkifiers(["nomatch", "https://a.test/{x=1}"]), "signups")).toEqual({ links: [] });
    expect(topicLinks(linkifiers(["signups", "https://a.test/{x=1}"]), "signups")).toEqual({ why: expect.stringContaining("{x=1}") });
    const tied: Linkifier[] = [
      { id: 1, pattern: "sign(?P<a>ups)", urlTemplate: "https://a.test/{a}", order: 5 },
      { id: 2, pattern: "signups", urlTemplate: "https://b.test/", order: 5 },
    ];
    expect(topicLinks(tied, "signups")).toEqual({ why: expect.stringContaining("same order") });
    expect(topicLinks([tied[0]!, { ...tied[1]!, pattern: "other" }], "signups")).toEqual({ links: [{ url: "https://a.test/ups", text: "signups" }] });
    expect(topicLinks(linkifiers(["x?", "https://a.test/"]), "(signups)")).toEqual({ why: expect.stringContaining("empty string") });
  });
});

describe("inline flags, translated as re2 applies them (re2/parse.cc)", () => {
  const match = (pattern: string, text: string) => {
    const t = translateRe2(pattern);
    if (!t.ok) throw new Error(t.why);
    return new RegExp(t.source, "u").exec(text)?.[0] ?? null;
  };

  it.each([
    // (?i): literals as their simple case-folding orbits; no RegExp-wide i flag.
    ["(?i)jira-(?P<id>\\d+)", "[Jj][Ii][Rr][Aa]\\u{2d}(?<id>[0-9]+)"],
    ["(?i)k", "[Kk\\u{212a}]"],
    ["(?i)ω", "[\\u{3a9}\\u{3c9}\\u{2126}]"],
    ["(?i)ß", "[\\u{df}\\u{1e9e}]"],
    ["(?i)σ", "[\\u{3a3}\\u{3c2}-\\u{3c3}]"],
    // \w folded: U+017F (orbit of s) and U+212A (orbit of k); \W is its complement; \d \s have no folds.
    ["(?i)\\w", "[0-9A-Z\\u{5f}a-z\\u{17f}\\u{212a}]"],
    ["(?i)\\W", "[\\u{0}-\\u{2f}\\u{3a}-\\u{40}\\u{5b}-\\u{5e}\\u{60}\\u{7b}-\\u{17e}\\u{180}-\\u{2129}\\u{212b}-\\u{10ffff}]"],
    ["(?i)\\d", "[0-9]"],
    // Classes folded, then negated; a property gets the code points outside it that fold with one inside.
    ["(?i)[^k]", "[^Kk\\u{212a}]"],
    ["(?i)[a-c]", "[A-Ca-c]"],
    ["(?i)\\p{Lu}", "[\\p{Lu}a-z\\u{b5}\\u{df}-\\u{f6}\\u{f8}-\\u{ff}"],
    ["(?i)\\PL", "[^\\p{L}\\u{345}]"],
    ["(?i)[^\\PL]", "[\\p{L}\\u{345}]"],
    // \b and . are not folded.
    ["(?i)x\\bk", "[Xx]\\b[Kk\\u{212a}]"],
    ["(?i).", "[^\\n]"],
    // Scoped and cleared flags; a group gives back the flags it opened with; `|` does not.
    ["a(?i:b)c", "a(?:[Bb])c"],
    ["(?i)a(?-i)b", "[Aa]b"],
    ["(a(?i)b)c", "(a[Bb])c"],
    ["(?:a(?i)b|c)d", "(?:a[Bb]|[Cc])d"],
    ["(?)a", "a"],
    // (?s), (?m), (?U) and combinations.
    ["(?s)a.b", "a[\\u{0}-\\u{10ffff}]b"],
    ["(?m)^a$", "(?<![^\\n])a(?![^\\n])"],
    ["(?m)\\Aa\\z", "^a$"],
    ["(?U)a+b*?c{2,}", "a+?b*c{2,}?"],
    ["(?is)A.", "[Aa][\\u{0}-\\u{10ffff}]"],
    ["(?i-s:x.)", "(?:[Xx][^\\n])"],
  ])("%s", (re2, js) => {
    const t = translateRe2(re2);
    expect(t.ok, JSON.stringify(t)).toBe(true);
    if (t.ok) {
      if (js.endsWith("]") || !re2.includes("Lu")) expect(t.source).toBe(js);
      else expect(t.source.startsWith(js)).toBe(true);
    }
  });

  it("matches as re2 does: mixed case, the fold-equivalents, ASCII \\b next to ſ and K, negated classes", () => {
    expect(match("(?i)jira-(?P<id>\\d+)", "see JiRa-42 now")).toBe("JiRa-42");
    expect(match("(?i)channel", "CHANNEL events")).toBe("CHANNEL");
    expect(match("(?i)kelvin", "\u212Aelvin")).toBe("\u212Aelvin");
    expect(match("(?i)(?:ss)", "\u017Fs")).toBe("\u017Fs");
    // re2's \b is ASCII even under (?i): U+212A is not a word character, so x\bK has a boundary (JavaScript's /iu would say none).
    expect(match("(?i)x\\bk", "x\u212A")).toBe("x\u212A");
    expect(match("(?i)x\\Bk", "x\u212A")).toBeNull();
    expect(match("(?i)\\bs", "\u017Fs")).toBe("s");
    // (?i)\w holds ſ and K, (?i)\W holds neither, nor s or k.
    expect(["\u017F", "\u212A", "s", "K"].map((c) => match("(?i)^\\w$", c) !== null)).toEqual([true, true, true, true]);
    expect(["\u017F", "\u212A", "s", "K", "-"].map((c) => match("(?i)^\\W$", c) !== null)).toEqual([false, false, false, false, true]);
    expect(["a", "A", "\u00e9", "1"].map((c) => match("(?i)^\\P{Lu}$", c) !== null)).toEqual([false, false, false, true]);
    expect(["k", "K", "\u212A", "j"].map((c) => match("(?i)^[^k]$", c) !== null)).toEqual([false, false, false, true]);
    expect(match("a(?i:b)c", "aBc")).toBe("aBc");
    expect(match("a(?i:b)c", "aBC")).toBeNull();
  });

  it("(?U) swaps greedy and lazy; (?s) lets . match \\n; (?m) breaks lines at \\n only", () => {
    expect(match("(?U)a+", "aaa")).toBe("a");
    expect(match("(?U)a+?", "aaa")).toBe("aaa");
    expect(match("(?U)<.*>", "<a><b>")).toBe("<a>");
    expect(match("a.b", "a\nb")).toBeNull();
    expect(match("(?s)a.b", "a\nb")).toBe("a\nb");
    expect(match("(?m)^b$", "a\nb\nc")).toBe("b");
    expect(match("^b$", "a\nb\nc")).toBeNull();
    // re2 breaks lines at \n only (JavaScript's m flag also at \r, U+2028, U+2029).
    for (const sep of ["\r", "\u2028", "\u2029"]) expect(match("(?m)^b", `a${sep}b`), JSON.stringify(sep)).toBeNull();
    expect(match("(?m)a$", "a\r\n")).toBeNull();
  });

  it("the flags end with the pattern: prepare_linkifier_pattern's groups around it are not folded", () => {
    const p = prepareLinkifierRegex("(?i)jira-(?P<id>\\d+)");
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.regex.flags).toBe("gu");
    // U+0345 folds with ι, but is not a letter: after the match it is allowed, as in re2.
    for (const [t, m] of [
      ["JIRA-7\u0345", true],
      ["JIRA-7\u03b9", false],
      ["xJIRA-7", false],
      ["(Jira-7)", true],
    ] as const) {
      p.regex.lastIndex = 0;
      expect(p.regex.test(t), t).toBe(m);
    }
  });

  it("topic links of a case-insensitive linkifier (Zulip's test_realm_patterns with (?i))", () => {
    const ls = linkifiers(["(?i)(?P<name>[a-z]+)-(?P<id>[0-9]+)", "https://trac.example.com/{name}/{id}"]);
    expect(links(ls, "ABC-123 and abc-9")).toEqual([
      { url: "https://trac.example.com/ABC/123", text: "ABC-123" },
      { url: "https://trac.example.com/abc/9", text: "abc-9" },
    ]);
    expect(links(linkifiers(["(?i)(?P<word>channel)", "https://example.com/{word}"]), "Channel events")).toEqual([
      { url: "https://example.com/Channel", text: "Channel" },
    ]);
    expect(topicLinks(linkifiers(["(?i)x", "https://a.test/"]), "")).toEqual({ links: [] });
  });
});

describe("linkifiers matching the notices' text", () => {
  it("finds a linkifier that matches, names an untranslatable one, and passes the others", () => {
    const texts = ["Channel \u0002klzzwxh:0000\u0003 has been unarchived.", "Channel #**town hall** has been unarchived."];
    expect(linkifierMatching(linkifiers(["#(?P<id>[0-9]+)", "https://a.test/{id}"]), texts)).toBeNull();
    expect(linkifierMatching(linkifiers(["#(?P<id>[0-9]+)", "u"], ["un(?P<x>archived)", "https://a.test/{x}"]), texts)).toEqual({
      pattern: "un(?P<x>archived)",
      why: "matches",
    });
    // The stash placeholder's digits come after a ":", which opens a linkifier match.
    expect(linkifierMatching(linkifiers(["(?P<n>[0-9]+)", "https://a.test/{n}"]), texts)).toEqual({ pattern: "(?P<n>[0-9]+)", why: "matches" });
    expect(linkifierMatching(linkifiers(["(?i)BEEN", "https://a.test/"]), texts)).toEqual({ pattern: "(?i)BEEN", why: "matches" });
    expect(linkifierMatching(linkifiers(["(?x)been", "https://a.test/"]), texts)).toEqual({
      pattern: "(?x)been",
      why: expect.stringContaining("unknown (? construct"),
    });
  });
});
