import { describe, expect, it } from "vitest";
import { MeshError } from "../../src/delivery/errors.ts";
import { MATCH_ALL, matchesFilter, parseFilter } from "../../src/delivery/filter.ts";

const matches = (text: string, attributes: Record<string, string>) =>
  matchesFilter(parseFilter(text), attributes);

function syntaxError(text: string): string {
  try {
    parseFilter(text);
  } catch (error) {
    expect(error).toBeInstanceOf(MeshError);
    expect((error as MeshError).code).toBe("invalid_argument");
    return (error as MeshError).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} not to parse`);
}

const FORMS = `attributes.KEY = "value", attributes.KEY != "value", attributes:KEY or hasPrefix(attributes.KEY, "prefix")`;

describe("matchesFilter", () => {
  it("compares with = exactly", () => {
    expect(matches('attributes.region = "eu"', { region: "eu" })).toBe(true);
    expect(matches('attributes.region = "eu"', { region: "EU" })).toBe(false);
    expect(matches('attributes.region = "eu"', { region: "eu-west" })).toBe(false);
  });

  it("compares with !=", () => {
    expect(matches('attributes.region != "eu"', { region: "us" })).toBe(true);
    expect(matches('attributes.region != "eu"', { region: "eu" })).toBe(false);
  });

  it("tests presence with :, whatever the value", () => {
    expect(matches("attributes:test", { test: "" })).toBe(true);
    expect(matches("attributes:test", { other: "1" })).toBe(false);
  });

  it("tests prefixes with hasPrefix", () => {
    const filter = parseFilter('hasPrefix(attributes.path, "/orders/")');
    expect(matchesFilter(filter, { path: "/orders/17" })).toBe(true);
    expect(matchesFilter(filter, { path: "/order" })).toBe(false);
    expect(matches('hasPrefix(attributes.path, "")', { path: "" })).toBe(true);
  });

  it("treats a missing attribute as unequal to everything and absent", () => {
    expect(matches('attributes.region = "eu"', {})).toBe(false);
    expect(matches('attributes.region != "eu"', {})).toBe(true);
    expect(matches("attributes:region", {})).toBe(false);
    expect(matches('hasPrefix(attributes.region, "")', {})).toBe(false);
  });

  it("looks only at the event's own attributes, not Object.prototype", () => {
    expect(matches("attributes:constructor", {})).toBe(false);
    expect(matches('attributes.constructor != "x"', {})).toBe(true);
  });

  it("combines with AND, OR and NOT", () => {
    const both = 'attributes.a = "1" AND attributes.b = "2"';
    expect(matches(both, { a: "1", b: "2" })).toBe(true);
    expect(matches(both, { a: "1", b: "3" })).toBe(false);
    const either = 'attributes.a = "1" OR attributes.b = "2"';
    expect(matches(either, { b: "2" })).toBe(true);
    expect(matches(either, { a: "2", b: "1" })).toBe(false);
    expect(matches("NOT attributes:test", {})).toBe(true);
    expect(matches("NOT attributes:test", { test: "yes" })).toBe(false);
    expect(matches("NOT NOT attributes:test", { test: "yes" })).toBe(true);
  });

  it("binds AND tighter than OR", () => {
    const filter = parseFilter("attributes:a OR attributes:b AND attributes:c");
    expect(filter).toEqual({
      kind: "or",
      operands: [
        { kind: "exists", key: "a" },
        {
          kind: "and",
          operands: [
            { kind: "exists", key: "b" },
            { kind: "exists", key: "c" },
          ],
        },
      ],
    });
    expect(matchesFilter(filter, { a: "" })).toBe(true);
    expect(matches("attributes:a AND attributes:b OR attributes:c", { c: "" })).toBe(true);
  });

  it("binds NOT tighter than AND", () => {
    const filter = "NOT attributes:a AND attributes:b";
    expect(matches(filter, { b: "" })).toBe(true);
    expect(matches(filter, {})).toBe(false);
  });

  it("groups with parentheses", () => {
    const filter = "(attributes:a OR attributes:b) AND attributes:c";
    expect(matches(filter, { a: "" })).toBe(false);
    expect(matches(filter, { b: "", c: "" })).toBe(true);
    expect(matches("NOT (attributes:a AND attributes:b)", { a: "" })).toBe(true);
    expect(matches("((attributes:a))", { a: "" })).toBe(true);
  });
});

describe("parseFilter", () => {
  it("treats an empty or blank filter as match-everything", () => {
    expect(parseFilter("")).toBe(MATCH_ALL);
    expect(parseFilter(" \n\t ")).toBe(MATCH_ALL);
    expect(matchesFilter(MATCH_ALL, {})).toBe(true);
  });

  it('reads \\" and \\\\ escapes in strings', () => {
    const filter = parseFilter(String.raw`attributes.q = "say \"hi\" \\ bye"`);
    expect(filter).toEqual({ kind: "equals", key: "q", value: String.raw`say "hi" \ bye` });
    expect(matchesFilter(filter, { q: 'say "hi" \\ bye' })).toBe(true);
  });

  it("lets whitespace go anywhere between tokens, or nowhere", () => {
    expect(matches('(attributes.a="1"AND\n\tattributes : b)', { a: "1", b: "" })).toBe(true);
    expect(matches('hasPrefix( attributes . a , "x" )', { a: "xy" })).toBe(true);
  });

  it("accepts every attribute name the broker accepts", () => {
    expect(parseFilter('attributes.1st-try_x = "y"')).toEqual({
      kind: "equals",
      key: "1st-try_x",
      value: "y",
    });
    expect(parseFilter("attributes:and")).toEqual({ kind: "exists", key: "and" });
    expect(parseFilter(`attributes:${"k".repeat(64)}`)).toEqual({ kind: "exists", key: "k".repeat(64) });
  });

  it("explains syntax errors with the column and what was expected", () => {
    expect(syntaxError("attributes.region = eu")).toBe(
      'filter: expected a quoted string after "=" at column 21',
    );
    expect(syntaxError("attributes.region")).toBe(
      'filter: expected "=" or "!=" after attributes.region at the end of the filter (column 18)',
    );
    expect(syntaxError('hasprefix(attributes.a, "x")')).toBe(
      'filter: unknown function "hasprefix" at column 1; the only function is hasPrefix(attributes.KEY, "prefix")',
    );
    expect(syntaxError('region = "eu"')).toBe(
      `filter: expected a condition at column 1; conditions look like ${FORMS}`,
    );
    expect(syntaxError("attributes:a attributes:b")).toBe(
      "filter: expected AND, OR or the end of the filter at column 14",
    );
    expect(syntaxError('data.x = "1"')).toBe(
      'filter: expected "attributes" at column 1, not "data"; filters can only test attributes',
    );
    expect(syntaxError("attributes.a = 'x'")).toBe(
      "filter: expected a double-quoted string at column 16; single quotes are not allowed",
    );
    expect(syntaxError('attributes.a == "x"')).toBe(
      'filter: unexpected "==" at column 14; expected "=" or "!="',
    );
    expect(syntaxError('attributes.a = "x')).toBe(
      `filter: unterminated string at column 16; expected a closing '"'`,
    );
    expect(syntaxError(String.raw`attributes.a = "\n"`)).toBe(
      String.raw`filter: unknown escape "\n" at column 17; inside a string only \" and \\ are allowed`,
    );
  });

  it("explains mistakes around keywords, grouping and operators", () => {
    expect(syntaxError("attributes:a and attributes:b")).toBe(
      "filter: expected AND, OR or the end of the filter at column 14 (keywords are upper case: AND)",
    );
    expect(syntaxError("attributes:a AND")).toBe(
      `filter: expected a condition after AND at the end of the filter (column 17); conditions look like ${FORMS}`,
    );
    expect(syntaxError("NOT")).toBe(
      `filter: expected a condition after NOT at the end of the filter (column 4); conditions look like ${FORMS}`,
    );
    expect(syntaxError("()")).toBe(
      `filter: expected a condition after "(" at column 2; conditions look like ${FORMS}`,
    );
    expect(syntaxError("(attributes:a")).toBe(
      'filter: expected ")" at the end of the filter (column 14) to close the "(" at column 1',
    );
    expect(syntaxError("attributes:a)")).toBe(
      'filter: unexpected ")" at column 13; there is no "(" for it to close',
    );
    expect(syntaxError("!attributes:a")).toBe(
      'filter: expected "!=" at column 1; use NOT to negate a condition',
    );
    expect(syntaxError("attributes:a && attributes:b")).toBe(
      'filter: unexpected character "&" at column 14; use AND, OR and NOT to combine conditions',
    );
  });

  it("explains malformed attribute references and hasPrefix calls", () => {
    expect(syntaxError("attributes")).toBe(
      'filter: expected "." or ":" after "attributes" at the end of the filter (column 11)',
    );
    expect(syntaxError("attributes.")).toBe(
      'filter: expected an attribute name after "attributes." at the end of the filter (column 12)',
    );
    const nameRule =
      "is not valid: use 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit";
    expect(syntaxError('attributes.Region = "eu"')).toBe(
      `filter: attribute name "Region" at column 12 ${nameRule}`,
    );
    expect(syntaxError("attributes:_x")).toBe(`filter: attribute name "_x" at column 12 ${nameRule}`);
    expect(syntaxError(`attributes:${"k".repeat(65)}`)).toBe(
      `filter: attribute name "${"k".repeat(65)}" at column 12 ${nameRule}`,
    );
    expect(syntaxError('hasPrefix(attributes:a, "x")')).toBe(
      "filter: expected attributes.KEY as the first argument of hasPrefix at column 11",
    );
    expect(syntaxError('hasPrefix(attributes.a "x")')).toBe(
      'filter: expected "," after attributes.a in hasPrefix at column 24',
    );
    expect(syntaxError("hasPrefix(attributes.a, x)")).toBe(
      "filter: expected a quoted string as the prefix in hasPrefix at column 25",
    );
    expect(syntaxError('hasPrefix(attributes.a, "x"')).toBe(
      'filter: expected ")" to close hasPrefix( at the end of the filter (column 28)',
    );
  });

  it("counts columns in characters, not UTF-16 units", () => {
    expect(syntaxError('attributes.a = "🙂" x')).toBe(
      "filter: expected AND, OR or the end of the filter at column 20",
    );
  });

  it("limits the filter to 1024 characters", () => {
    expect(parseFilter(`attributes:a${" ".repeat(1012)}`)).toEqual({ kind: "exists", key: "a" });
    expect(parseFilter(`attributes.a = "${"🙂".repeat(1007)}"`)).toMatchObject({ kind: "equals" });
    expect(syntaxError(" ".repeat(1025))).toBe(
      "filter: text is 1025 characters long; at most 1024 are allowed",
    );
  });

  it("limits nesting to 32 levels of parentheses and NOT", () => {
    const nested = (levels: number) => `${"(".repeat(levels)}attributes:a${")".repeat(levels)}`;
    expect(matches(nested(32), { a: "" })).toBe(true);
    const tooDeep =
      "filter: nested too deeply at column 33; at most 32 levels of parentheses and NOT are allowed";
    expect(syntaxError(nested(33))).toBe(tooDeep);
    expect(matches(`${"NOT ".repeat(32)}attributes:a`, { a: "" })).toBe(true);
    expect(syntaxError(`${"NOT ".repeat(33)}attributes:a`)).toBe(
      "filter: nested too deeply at column 129; at most 32 levels of parentheses and NOT are allowed",
    );
    expect(syntaxError(`${"NOT (".repeat(17)}attributes:a${")".repeat(17)}`)).toBe(
      "filter: nested too deeply at column 81; at most 32 levels of parentheses and NOT are allowed",
    );
  });
});
