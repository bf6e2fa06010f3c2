/**
 * Campaign templates: `content.title`, `content.body` and every string of `content.data` are Liquid
 * (liquidjs), rendered per recipient from `recipient.{user_id, address, attrs.*}`, `campaign.{id, name}` and
 * the campaign's `variables`. Pure: compiled once per campaign (TemplateCache), rendered with no I/O.
 *
 * Sandboxed: no file system (an empty in-memory template map) and no `include` / `render` / `layout` /
 * `block` tags, so a template reads nothing but its context; own properties only (no prototype walks);
 * liquidjs's own limits on parse size, render time and allocations, and a cap on each output's length.
 *
 * Speed: a template without markup (`{{` / `{%`) is its own output and is never rendered; one made only of
 * text and plain `{{ a.b.c }}` outputs is rendered by concatenation (liquidjs's walk costs several times
 * more per message), falling back to liquidjs whenever a value is not a string, number or boolean.
 */
import { Liquid, type Template } from 'liquidjs';
import type { FieldError } from '../errors.js';

export const MISSING_POLICIES = ['empty', 'skip'] as const;
/** A missing variable renders as nothing (`empty`), or the recipient is not sent to (`skip`, a `skipped` outcome). */
export type MissingPolicy = (typeof MISSING_POLICIES)[number];

export const TEMPLATE_LIMITS = Object.freeze({
  /** ms per render of one template (liquidjs `renderLimit`): an endless nest of loops stops here */
  renderMs: 50,
  /** liquidjs `memoryLimit`: elements of ranges, arrays and strings a render may create */
  memory: 1_000_000,
  /** characters of one rendered output (a title, a body, one data string) */
  outputChars: 100_000,
  /** characters liquidjs parses per template */
  parseChars: 200_000,
  /** attribute keys carried in each chunk; a campaign naming more carries the whole attrs object */
  carriedAttrs: 32,
});

/** The roots a template may name; anything else is refused at creation as a likely typo. */
const ROOTS = new Set(['recipient', 'campaign', 'variables']);
/** Keys of recipients.attrs a template may name (they go into the planner's COPY as literals). */
const ATTR_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const FORBIDDEN_TAGS = ['include', 'render', 'layout', 'block'];

function sandbox(): Liquid {
  const engine = new Liquid({
    templates: {},
    relativeReference: false,
    dynamicPartials: false,
    ownPropertyOnly: true,
    // Only read under `strictVariables` (the `skip` policy's check): a guard or a default is not a miss.
    lenientIf: true,
    parseLimit: TEMPLATE_LIMITS.parseChars,
    renderLimit: TEMPLATE_LIMITS.renderMs,
    memoryLimit: TEMPLATE_LIMITS.memory,
  });
  for (const tag of FORBIDDEN_TAGS) delete engine.tags[tag];
  return engine;
}

const ENGINE = sandbox();

/** What a recipient brings to a render. */
export interface RecipientFacts {
  userId: string;
  address: string | null;
  /** the attributes the campaign's templates name (null values count as missing) */
  attrs: Readonly<Record<string, unknown>>;
}

export interface CampaignFacts {
  id: number;
  name: string;
  variables: Readonly<Record<string, unknown>> | null;
}

export interface ContentSources {
  title: string;
  body: string;
  data?: Readonly<Record<string, unknown>> | null;
}

/** Rendered content of one message. */
export interface RenderedContent {
  title: string;
  body: string;
  /** null when the campaign has no `data` */
  data: Record<string, unknown> | null;
}

export type RenderOutcome =
  { kind: 'rendered'; content: RenderedContent } | { kind: 'skipped'; reason: string } | { kind: 'failed'; error: string };

/** What a campaign's templates read per recipient: the planner carries exactly that in each chunk. */
export interface TemplateNeeds {
  /** attribute keys, or 'all' (a template iterates attrs, or names a key dynamically, or names too many) */
  attrs: readonly string[] | 'all';
  address: boolean;
  /** whether anything per recipient is read at all */
  perRecipient: boolean;
}

type Piece = string | readonly string[];

class CompiledTemplate {
  /** text and plain outputs, or null when liquidjs must render it */
  private readonly pieces: readonly Piece[] | null;

  constructor(
    readonly field: string,
    readonly source: string,
    readonly liquid: Template[] | null,
  ) {
    this.pieces = liquid === null ? null : plainPieces(source);
  }

  /** null: a value the fast path does not write; liquidjs renders it */
  private fast(scope: Scope): string | null {
    let out = '';
    for (const p of this.pieces!) {
      if (typeof p === 'string') {
        out += p;
        continue;
      }
      let v: unknown = scope;
      for (const key of p) {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
        if (!Object.prototype.hasOwnProperty.call(v, key)) {
          // liquidjs reads `size`, `first` and `last` of what lacks them as its own
          if (SPECIAL_KEYS.has(key)) return null;
          v = undefined;
          break;
        }
        v = (v as Record<string, unknown>)[key];
      }
      if (v === undefined || v === null) continue;
      if (typeof v === 'string') out += v;
      else if (typeof v === 'number' || typeof v === 'boolean') out += String(v);
      else return null;
    }
    return out;
  }

  render(scope: Scope, strict: boolean): string {
    if (this.liquid === null) return this.source;
    const quick = strict || this.pieces === null ? null : this.fast(scope);
    const out = quick ?? String(ENGINE.renderSync(this.liquid, scope, strict ? { strictVariables: true } : undefined));
    if (out.length > TEMPLATE_LIMITS.outputChars)
      throw new TemplateLimitError(`${this.field} renders to more than ${TEMPLATE_LIMITS.outputChars} characters`);
    return out;
  }
}

class TemplateLimitError extends Error {
  override readonly name = 'TemplateLimitError';
}

/** The context a template sees. */
interface Scope {
  recipient: { user_id: string; address?: string; attrs: Readonly<Record<string, unknown>> };
  campaign: { id: number; name: string };
  variables: Readonly<Record<string, unknown>>;
}

/** `{{ a.b }}` with nothing but identifiers: the fast path's outputs. */
const PLAIN_OUTPUT = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}/g;
/** Names liquidjs reads as literals, not variables. */
const LITERALS = new Set(['true', 'false', 'nil', 'null', 'empty', 'blank']);
const SPECIAL_KEYS = new Set(['size', 'first', 'last']);

function plainPieces(source: string): Piece[] | null {
  const pieces: Piece[] = [];
  let last = 0;
  for (const m of source.matchAll(PLAIN_OUTPUT)) {
    const text = source.slice(last, m.index);
    if (hasMarkup(text)) return null;
    if (text !== '') pieces.push(text);
    const path = m[1]!.split('.');
    if (LITERALS.has(path[0]!)) return null;
    pieces.push(path);
    last = m.index + m[0].length;
  }
  const rest = source.slice(last);
  if (hasMarkup(rest)) return null;
  if (rest !== '') pieces.push(rest);
  return pieces;
}

export function hasMarkup(s: string): boolean {
  return s.includes('{{') || s.includes('{%');
}

/** Every template of a campaign, compiled, with what they read. */
export class CampaignTemplates {
  /** false: no template has markup; messages carry the sources as they are */
  readonly personal: boolean;
  readonly needs: TemplateNeeds;
  private readonly title: CompiledTemplate;
  private readonly body: CompiledTemplate;
  /** data's shape, its strings replaced by their compiled templates */
  private readonly data: unknown;
  private readonly paths: ReadonlyArray<readonly string[]>;
  /** some path is dynamic (`attrs[key]`): the `skip` check must render strictly to know */
  private readonly uncertain: boolean;
  private readonly campaignScope: Pick<Scope, 'campaign' | 'variables'>;

  private constructor(
    parts: { title: CompiledTemplate; body: CompiledTemplate; data: unknown; analysis: Analysis },
    readonly missing: MissingPolicy,
    campaign: CampaignFacts,
  ) {
    this.title = parts.title;
    this.body = parts.body;
    this.data = parts.data;
    this.paths = parts.analysis.paths;
    this.uncertain = parts.analysis.uncertain;
    this.needs = parts.analysis.needs;
    this.personal = parts.analysis.personal;
    this.campaignScope = { campaign: { id: campaign.id, name: campaign.name }, variables: campaign.variables ?? {} };
  }

  /**
   * Compiles a campaign's content. Content refused by `templateErrors` cannot be stored since templates
   * exist; content stored before (or otherwise not compiling) is sent as written, never rendered.
   */
  static compile(content: ContentSources, missing: MissingPolicy, campaign: CampaignFacts): CampaignTemplates {
    const r = compileContent(content);
    return new CampaignTemplates(r.errors.length === 0 ? r.parts : compileContent(content, false).parts, missing, campaign);
  }

  /** The first value a template names that this recipient lacks (undefined or null), or null. */
  missingFor(recipient: RecipientFacts): string | null {
    const scope = this.scope(recipient);
    for (const path of this.paths) {
      let v: unknown = scope;
      for (const key of path) {
        v =
          typeof v === 'object' && v !== null && Object.prototype.hasOwnProperty.call(v, key)
            ? (v as Record<string, unknown>)[key]
            : undefined;
        if (v === undefined || v === null) return path.join('.');
      }
    }
    return null;
  }

  /**
   * Renders one recipient's message. Under `skip`, a recipient missing a value a template needs is skipped
   * with the variable's name; a guarded use (`{% if %}`, `| default`) is not a miss.
   */
  render(recipient: RecipientFacts): RenderOutcome {
    if (!this.personal) return { kind: 'rendered', content: this.constant() };
    const scope = this.scope(recipient);
    // The static check is exact for fixed paths, so most recipients render without the strict pass.
    const strict = this.missing === 'skip' && (this.uncertain || this.missingFor(recipient) !== null);
    try {
      return {
        kind: 'rendered',
        content: {
          title: this.title.render(scope, strict),
          body: this.body.render(scope, strict),
          data: this.data === null ? null : (renderData(this.data, scope, strict) as Record<string, unknown>),
        },
      };
    } catch (err) {
      const e = err as Error;
      if (e.name === 'UndefinedVariableError') return { kind: 'skipped', reason: `missing ${undefinedName(e.message)}` };
      return { kind: 'failed', error: `template: ${e.message.slice(0, 300)}` };
    }
  }

  /**
   * Under `skip`, why this recipient is skipped (the variable it lacks), or null; renders only when the
   * static check cannot tell. For channels that render later (the inbox, when read).
   */
  skipReason(recipient: RecipientFacts): string | null {
    if (this.missing !== 'skip' || !this.personal) return null;
    if (!this.uncertain && this.missingFor(recipient) === null) return null;
    const r = this.render(recipient);
    return r.kind === 'skipped' ? r.reason : null;
  }

  /** Renders with missing values as nothing, whatever the policy (the inbox, after the send decided who). */
  renderLenient(recipient: RecipientFacts): RenderOutcome {
    if (!this.personal) return { kind: 'rendered', content: this.constant() };
    const scope = this.scope(recipient);
    try {
      return {
        kind: 'rendered',
        content: {
          title: this.title.render(scope, false),
          body: this.body.render(scope, false),
          data: this.data === null ? null : (renderData(this.data, scope, false) as Record<string, unknown>),
        },
      };
    } catch (err) {
      return { kind: 'failed', error: `template: ${(err as Error).message.slice(0, 300)}` };
    }
  }

  private constant(): RenderedContent {
    return {
      title: this.title.source,
      body: this.body.source,
      data: this.data === null ? null : (sourceData(this.data) as Record<string, unknown>),
    };
  }

  private scope(r: RecipientFacts): Scope {
    const recipient: Scope['recipient'] =
      r.address === null ? { user_id: r.userId, attrs: r.attrs } : { user_id: r.userId, address: r.address, attrs: r.attrs };
    return { recipient, ...this.campaignScope };
  }
}

function renderData(node: unknown, scope: Scope, strict: boolean): unknown {
  if (node instanceof CompiledTemplate) return node.render(scope, strict);
  if (Array.isArray(node)) return node.map((v) => renderData(v, scope, strict));
  if (typeof node === 'object' && node !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = renderData(v, scope, strict);
    return out;
  }
  return node;
}

function sourceData(node: unknown): unknown {
  if (node instanceof CompiledTemplate) return node.source;
  if (Array.isArray(node)) return node.map(sourceData);
  if (typeof node === 'object' && node !== null) return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, sourceData(v)]));
  return node;
}

/** liquidjs: `undefined variable: recipient.attrs.x, line:1, col:4` → `recipient.attrs.x` */
function undefinedName(message: string): string {
  const m = /undefined variable: ([^,]+)/.exec(message);
  return m ? m[1]!.trim() : message.slice(0, 100);
}

interface Analysis {
  paths: Array<readonly string[]>;
  uncertain: boolean;
  needs: TemplateNeeds;
  personal: boolean;
}

/** `output "…" not closed, line:1, col:7` → `output "…" not closed at line 1 col 7` */
function describe(err: unknown): string {
  const e = err as Error & { token?: { getPosition?: () => number[] } };
  const base = e.message.replace(/, line:\d+, col:\d+$/, '');
  const forbidden = /^tag "(include|render|layout|block)" not found/.exec(base);
  const text = forbidden ? `{% ${forbidden[1]} %} is not allowed: templates read no files` : base;
  const pos = e.token?.getPosition?.();
  return pos !== undefined && pos.length >= 2 ? `${text} at line ${pos[0]} col ${pos[1]}` : text;
}

/**
 * Parses and analyses a campaign's content: every field error (parse errors with their position, unknown
 * variable roots, attribute names that cannot be carried), or the compiled parts.
 */
function compileContent(
  content: ContentSources,
  liquid = true,
): {
  errors: FieldError[];
  parts: { title: CompiledTemplate; body: CompiledTemplate; data: unknown; analysis: Analysis };
} {
  const errors: FieldError[] = [];
  const compiled: CompiledTemplate[] = [];
  const one = (field: string, source: string): CompiledTemplate => {
    if (!liquid || !hasMarkup(source)) return new CompiledTemplate(field, source, null);
    try {
      const t = new CompiledTemplate(field, source, ENGINE.parse(source));
      compiled.push(t);
      return t;
    } catch (err) {
      errors.push({ field, error: describe(err) });
      return new CompiledTemplate(field, source, null);
    }
  };
  const title = one('content.title', content.title);
  const body = one('content.body', content.body);
  const walk = (node: unknown, field: string): unknown => {
    if (typeof node === 'string') return one(field, node);
    if (Array.isArray(node)) return node.map((v, i) => walk(v, `${field}[${i}]`));
    if (typeof node === 'object' && node !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) out[k] = walk(v, `${field}.${k}`);
      return out;
    }
    return node;
  };
  const data = content.data === undefined || content.data === null ? null : walk(content.data, 'content.data');
  const analysis = analyse(compiled, errors);
  return { errors, parts: { title, body, data, analysis } };
}

function analyse(templates: readonly CompiledTemplate[], errors: FieldError[]): Analysis {
  const paths = new Map<string, readonly string[]>();
  const attrs = new Set<string>();
  let allAttrs = false;
  let address = false;
  let perRecipient = false;
  let uncertain = false;
  for (const t of templates) {
    const { globals } = ENGINE.analyzeSync(t.liquid!, { partials: false });
    for (const [root, uses] of Object.entries(globals)) {
      if (!ROOTS.has(root)) {
        const at = uses[0]?.location;
        errors.push({
          field: t.field,
          error: `unknown variable "${root}"${at ? ` at line ${at.row} col ${at.col}` : ''} (a template reads recipient.*, campaign.* and variables.*)`,
        });
        continue;
      }
      for (const use of uses) {
        const segs = use.segments;
        // The fixed prefix of the path: the `skip` check resolves it; a dynamic segment ends it.
        const fixed: string[] = [];
        for (const s of segs) {
          if (typeof s !== 'string') break;
          fixed.push(s);
        }
        if (fixed.length < segs.length) uncertain = true;
        if (fixed.length > 1) paths.set(fixed.join('\u0000'), fixed);
        if (root !== 'recipient') continue;
        perRecipient = true;
        const second = segs[1];
        if (second === undefined) {
          allAttrs = true;
          address = true;
        } else if (second === 'address') address = true;
        else if (second === 'attrs') {
          const key = segs[2];
          if (typeof key !== 'string') allAttrs = true;
          else if (!ATTR_KEY.test(key)) {
            errors.push({
              field: t.field,
              error: `attribute name "${key.slice(0, 80)}" at line ${use.location.row} col ${use.location.col} is not 1-64 letters, digits, "_", "-" or "."`,
            });
          } else attrs.add(key);
        }
      }
    }
  }
  const carried = allAttrs || attrs.size > TEMPLATE_LIMITS.carriedAttrs ? 'all' : [...attrs].sort();
  return {
    paths: [...paths.values()],
    uncertain,
    needs: { attrs: carried, address, perRecipient },
    personal: templates.length > 0,
  };
}

/** A batch's templates applied: who is skipped or failed, and, when rendered, each other one's content. */
export interface BatchRender {
  /** by position; undefined where skipped, failed or excluded; null when nothing was rendered (check only) */
  contents: Array<RenderedContent | undefined> | null;
  skipped: Map<number, string>;
  failed: Map<number, string>;
}

/**
 * Applies a campaign's templates to `n` recipients: renders each (`render`, a channel that renders at send
 * time) or only decides who is skipped (one that renders later), leaving out the positions in `exclude`.
 */
export function renderRecipients(
  t: CampaignTemplates,
  q: { n: number; recipient: (i: number) => RecipientFacts; render: boolean; exclude?: ReadonlyMap<number, unknown> },
): BatchRender {
  const out: BatchRender = {
    contents: q.render ? new Array<RenderedContent | undefined>(q.n) : null,
    skipped: new Map(),
    failed: new Map(),
  };
  for (let i = 0; i < q.n; i++) {
    if (q.exclude?.has(i) === true) continue;
    if (!q.render) {
      const reason = t.skipReason(q.recipient(i));
      if (reason !== null) out.skipped.set(i, reason);
      continue;
    }
    const r = t.render(q.recipient(i));
    if (r.kind === 'rendered') out.contents![i] = r.content;
    else if (r.kind === 'skipped') out.skipped.set(i, r.reason);
    else out.failed.set(i, r.error);
  }
  return out;
}

/**
 * What each chunk carries for a campaign's templates: the attributes (and address) they read, when
 * something is rendered or checked at send time; null (packed ids only) when not: no markup, nothing per
 * recipient, or a channel that renders later (the inbox, when read) under `missing: "empty"`.
 */
export function sendTimeNeeds(t: CampaignTemplates, rendersAtSend: boolean): { attrs: readonly string[] | 'all'; address: boolean } | null {
  if (!t.personal || !t.needs.perRecipient) return null;
  if (!rendersAtSend && t.missing !== 'skip') return null;
  return { attrs: t.needs.attrs, address: t.needs.address };
}

/** Creation-time check of a campaign's content: every field error, with positions. */
export function templateErrors(content: ContentSources): FieldError[] {
  return compileContent(content).errors;
}

/**
 * Compiled templates per campaign, kept for the process's life (a campaign's content never changes), up to
 * `max` campaigns (the least recently used one goes first).
 */
export class TemplateCache {
  private readonly entries = new Map<number, CampaignTemplates>();

  constructor(private readonly max = 1000) {}

  get(campaign: CampaignFacts & { content: ContentSources; missing: MissingPolicy }): CampaignTemplates {
    let t = this.entries.get(campaign.id);
    if (t !== undefined) {
      this.entries.delete(campaign.id);
      this.entries.set(campaign.id, t);
      return t;
    }
    t = CampaignTemplates.compile(campaign.content, campaign.missing, campaign);
    this.entries.set(campaign.id, t);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
    return t;
  }
}

/**
 * Decodes a recipient's attributes (JSON text of an object), or an empty object. A null value is left out:
 * to a template it is missing, like an absent key (the planner's COPY strips them the same way).
 */
export function parseAttrs(json: string | null | undefined): Record<string, unknown> {
  if (json === null || json === undefined || json === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return {};
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
  const attrs = v as Record<string, unknown>;
  for (const k in attrs) if (attrs[k] === null) delete attrs[k];
  return attrs;
}
