// Subscription filters: a small Pub/Sub-style language over an event's string attributes. The text
// comes from whoever creates the subscription, so every error names a column and what would fit there.
import { invalidArgument } from "./errors.ts";

export type Filter =
  | { readonly kind: "all" }
  | { readonly kind: "equals"; readonly key: string; readonly value: string }
  | { readonly kind: "notEquals"; readonly key: string; readonly value: string }
  | { readonly kind: "exists"; readonly key: string }
  | { readonly kind: "hasPrefix"; readonly key: string; readonly prefix: string }
  | { readonly kind: "not"; readonly operand: Filter }
  | { readonly kind: "and" | "or"; readonly operands: readonly Filter[] };

export const MATCH_ALL: Filter = Object.freeze({ kind: "all" });

// The length cap bounds parsing cost; the depth cap bounds recursion in the parser and in matching.
// The comparison cap is a backstop: 1024 characters hold at most about 64 comparisons today.
const MAX_LENGTH = 1024;
const MAX_DEPTH = 32;
const MAX_COMPARISONS = 100;

// Same rule as publishing.ts: a filter on a name no event can carry would silently match nothing.
const ATTRIBUTE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const KEYWORDS = new Set(["AND", "OR", "NOT"]);
const FORMS = `attributes.KEY = "value", attributes.KEY != "value", attributes:KEY or hasPrefix(attributes.KEY, "prefix")`;

type Punct = "." | ":" | "=" | "!=" | "(" | ")" | ",";
type Token =
  | { type: "word"; text: string; at: number }
  | { type: "string"; value: string; at: number }
  | { type: "punct"; text: Punct; at: number }
  | { type: "end"; at: number };

export function parseFilter(text: string): Filter {
  const length = [...text].length;
  if (length > MAX_LENGTH) {
    throw invalidArgument(`filter: text is ${length} characters long; at most ${MAX_LENGTH} are allowed`);
  }
  if (text.trim() === "") return MATCH_ALL;
  return new Parser(text).parse();
}

export function matchesFilter(filter: Filter, attributes: Record<string, string>): boolean {
  switch (filter.kind) {
    case "all":
      return true;
    case "equals":
      return lookup(attributes, filter.key) === filter.value;
    case "notEquals":
      return lookup(attributes, filter.key) !== filter.value;
    case "exists":
      return lookup(attributes, filter.key) !== undefined;
    case "hasPrefix":
      return lookup(attributes, filter.key)?.startsWith(filter.prefix) ?? false;
    case "not":
      return !matchesFilter(filter.operand, attributes);
    case "and":
      return filter.operands.every((operand) => matchesFilter(operand, attributes));
    case "or":
      return filter.operands.some((operand) => matchesFilter(operand, attributes));
  }
}

// Own properties only: `attributes:constructor` must not find Object.prototype.constructor.
function lookup(attributes: Record<string, string>, key: string): string | undefined {
  return Object.hasOwn(attributes, key) ? attributes[key] : undefined;
}

class Parser {
  private readonly tokens: Token[];
  private next = 0;
  private depth = 0;
  private comparisons = 0;

  constructor(private readonly text: string) {
    this.tokens = this.tokenize();
  }

  parse(): Filter {
    const filter = this.or();
    const token = this.peek();
    if (token.type === "punct" && token.text === ")") {
      throw this.error(`unexpected ")" ${this.where(token)}; there is no "(" for it to close`);
    }
    if (token.type !== "end") {
      throw this.error(`expected AND, OR or the end of the filter ${this.where(token)}${keywordHint(token)}`);
    }
    return filter;
  }

  private or(after?: string): Filter {
    const operands = [this.and(after)];
    while (this.isWord(this.peek(), "OR")) {
      this.advance();
      operands.push(this.and("OR"));
    }
    return operands.length === 1 ? operands[0] : { kind: "or", operands };
  }

  private and(after?: string): Filter {
    const operands = [this.unary(after)];
    while (this.isWord(this.peek(), "AND")) {
      this.advance();
      operands.push(this.unary("AND"));
    }
    return operands.length === 1 ? operands[0] : { kind: "and", operands };
  }

  private unary(after?: string): Filter {
    const token = this.peek();
    if (!this.isWord(token, "NOT")) return this.primary(after);
    this.enter(token);
    this.advance();
    const operand = this.unary("NOT");
    this.depth--;
    return { kind: "not", operand };
  }

  private primary(after?: string): Filter {
    const token = this.peek();
    if (token.type === "punct" && token.text === "(") {
      this.enter(token);
      this.advance();
      const inner = this.or('"("');
      const close = this.peek();
      if (!(close.type === "punct" && close.text === ")")) {
        throw this.error(
          `expected ")" ${this.where(close)} to close the "(" at column ${this.column(token.at)}`,
        );
      }
      this.advance();
      this.depth--;
      return inner;
    }
    if (token.type === "word" && !KEYWORDS.has(token.text)) {
      const following = this.peek(1);
      if (token.text === "attributes") return this.attributeCondition();
      if (token.text === "hasPrefix") return this.hasPrefix();
      if (following.type === "punct" && following.text === "(") {
        throw this.error(
          `unknown function ${JSON.stringify(token.text)} ${this.where(token)}; the only function is hasPrefix(attributes.KEY, "prefix")`,
        );
      }
      if (following.type === "punct" && (following.text === "." || following.text === ":")) {
        throw this.error(
          `expected "attributes" ${this.where(token)}, not ${JSON.stringify(token.text)}; filters can only test attributes`,
        );
      }
    }
    const context = after === undefined ? "" : ` after ${after}`;
    throw this.error(
      `expected a condition${context} ${this.where(token)}${keywordHint(token)}; conditions look like ${FORMS}`,
    );
  }

  // `attributes` is the current token.
  private attributeCondition(): Filter {
    this.advance();
    const separator = this.peek();
    if (!(separator.type === "punct" && (separator.text === "." || separator.text === ":"))) {
      throw this.error(`expected "." or ":" after "attributes" ${this.where(separator)}`);
    }
    this.advance();
    const key = this.key(`"attributes${separator.text}"`);
    if (separator.text === ":") return { kind: "exists", key };
    const operator = this.peek();
    if (!(operator.type === "punct" && (operator.text === "=" || operator.text === "!="))) {
      throw this.error(`expected "=" or "!=" after attributes.${key} ${this.where(operator)}`);
    }
    this.advance();
    const value = this.quoted(`after "${operator.text}"`);
    return operator.text === "=" ? { kind: "equals", key, value } : { kind: "notEquals", key, value };
  }

  // `hasPrefix` is the current token.
  private hasPrefix(): Filter {
    this.advance();
    this.expectPunct("(", "after hasPrefix");
    const first = this.peek();
    const dot = this.peek(1);
    if (!(this.isWord(first, "attributes") && dot.type === "punct" && dot.text === ".")) {
      throw this.error(`expected attributes.KEY as the first argument of hasPrefix ${this.where(first)}`);
    }
    this.advance(2);
    const key = this.key('"attributes."');
    this.expectPunct(",", `after attributes.${key} in hasPrefix`);
    const prefix = this.quoted("as the prefix in hasPrefix");
    this.expectPunct(")", "to close hasPrefix(");
    return { kind: "hasPrefix", key, prefix };
  }

  // Counted here because every comparison passes through: `attributes.`, `attributes:` and hasPrefix.
  private key(after: string): string {
    const token = this.peek();
    if (token.type !== "word") {
      throw this.error(`expected an attribute name after ${after} ${this.where(token)}`);
    }
    if (!ATTRIBUTE_NAME.test(token.text)) {
      throw this.error(
        `attribute name ${JSON.stringify(token.text.slice(0, 80))} ${this.where(token)} is not valid: use 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit`,
      );
    }
    if (++this.comparisons > MAX_COMPARISONS) {
      throw this.error(`too many comparisons ${this.where(token)}; at most ${MAX_COMPARISONS} are allowed`);
    }
    this.advance();
    return token.text;
  }

  private quoted(context: string): string {
    const token = this.peek();
    if (token.type !== "string") throw this.error(`expected a quoted string ${context} ${this.where(token)}`);
    this.advance();
    return token.value;
  }

  private expectPunct(text: Punct, context: string): void {
    const token = this.peek();
    if (!(token.type === "punct" && token.text === text)) {
      throw this.error(`expected "${text}" ${context} ${this.where(token)}`);
    }
    this.advance();
  }

  private enter(token: Token): void {
    if (++this.depth > MAX_DEPTH) {
      throw this.error(
        `nested too deeply ${this.where(token)}; at most ${MAX_DEPTH} levels of parentheses and NOT are allowed`,
      );
    }
  }

  private isWord(token: Token, text: string): boolean {
    return token.type === "word" && token.text === text;
  }

  private peek(ahead = 0): Token {
    return this.tokens[Math.min(this.next + ahead, this.tokens.length - 1)];
  }

  private advance(count = 1): void {
    this.next += count;
  }

  private tokenize(): Token[] {
    const text = this.text;
    const tokens: Token[] = [];
    let i = 0;
    while (i < text.length) {
      const char = text[i];
      if (/\s/.test(char)) {
        i++;
      } else if (/[A-Za-z0-9_-]/.test(char)) {
        const word = /[A-Za-z0-9_-]+/y;
        word.lastIndex = i;
        const found = (word.exec(text) as RegExpExecArray)[0];
        tokens.push({ type: "word", text: found, at: i });
        i += found.length;
      } else if (char === '"') {
        const { value, end } = this.string(i);
        tokens.push({ type: "string", value, at: i });
        i = end;
      } else if (char === "=" && text[i + 1] === "=") {
        throw this.error(`unexpected "==" at column ${this.column(i)}; expected "=" or "!="`);
      } else if (char === "!") {
        if (text[i + 1] !== "=") {
          throw this.error(`expected "!=" at column ${this.column(i)}; use NOT to negate a condition`);
        }
        tokens.push({ type: "punct", text: "!=", at: i });
        i += 2;
      } else if (".:=(),".includes(char)) {
        tokens.push({ type: "punct", text: char as Punct, at: i });
        i++;
      } else if (char === "'") {
        throw this.error(
          `expected a double-quoted string at column ${this.column(i)}; single quotes are not allowed`,
        );
      } else {
        const shown = String.fromCodePoint(text.codePointAt(i) as number);
        const hint = "&|".includes(char) ? "; use AND, OR and NOT to combine conditions" : "";
        throw this.error(`unexpected character ${JSON.stringify(shown)} at column ${this.column(i)}${hint}`);
      }
    }
    tokens.push({ type: "end", at: text.length });
    return tokens;
  }

  // Reads the string whose opening quote is at `start`; returns its value and the index after it.
  private string(start: number): { value: string; end: number } {
    const text = this.text;
    let value = "";
    let i = start + 1;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\" && i + 1 < text.length) {
        const escaped = text[i + 1];
        if (escaped !== '"' && escaped !== "\\") {
          throw this.error(
            `unknown escape "\\${escaped}" at column ${this.column(i)}; inside a string only \\" and \\\\ are allowed`,
          );
        }
        i++;
      }
      value += text[i];
      i++;
    }
    if (i >= text.length) {
      throw this.error(`unterminated string at column ${this.column(start)}; expected a closing '"'`);
    }
    return { value, end: i + 1 };
  }

  private where(token: Token): string {
    const column = `column ${this.column(token.at)}`;
    return token.type === "end" ? `at the end of the filter (${column})` : `at ${column}`;
  }

  // Columns count characters, not UTF-16 units, so an emoji in a string does not shift them.
  private column(at: number): number {
    return [...this.text.slice(0, at)].length + 1;
  }

  private error(message: string) {
    return invalidArgument(`filter: ${message}`);
  }
}

function keywordHint(token: Token): string {
  if (token.type !== "word") return "";
  const upper = token.text.toUpperCase();
  return KEYWORDS.has(upper) && upper !== token.text ? ` (keywords are upper case: ${upper})` : "";
}
