import fc from 'fast-check';
import { Liquid } from 'liquidjs';
import { describe, expect, it } from 'vitest';
import { CampaignTemplates, parseAttrs, templateErrors, TemplateCache, type RecipientFacts } from '../../src/domain/template.js';

const CAMPAIGN = { id: 7, name: 'Spring', variables: { promo: 'SPRING10', pct: 10 } };
const ann: RecipientFacts = { userId: 'u1', address: 'ann@x.test', attrs: { first_name: 'Ann', city: 'Oslo', plan: 'pro' } };
const bare: RecipientFacts = { userId: 'u2', address: null, attrs: {} };

function compile(body: string, missing: 'empty' | 'skip' = 'empty', title = 'Hi', data: Record<string, unknown> | null = null) {
  return CampaignTemplates.compile({ title, body, data }, missing, CAMPAIGN);
}

describe('templates', () => {
  it('render recipient, campaign and variables values', () => {
    const t = compile(
      'Hello {{ recipient.attrs.first_name }} from {{ recipient.attrs.city }} ({{ campaign.name }} #{{ campaign.id }}): {{ variables.promo }} {{ recipient.user_id }} {{ recipient.address }}',
      'empty',
      '{{ recipient.attrs.first_name | upcase }}',
      {
        url: 'https://x.test/?u={{ recipient.user_id }}',
        n: 3,
        nested: { list: ['{{ variables.pct }}%', true] },
      },
    );
    expect(t.personal).toBe(true);
    expect(t.needs).toEqual({ attrs: ['city', 'first_name'], address: true, perRecipient: true });
    expect(t.render(ann)).toEqual({
      kind: 'rendered',
      content: {
        title: 'ANN',
        body: 'Hello Ann from Oslo (Spring #7): SPRING10 u1 ann@x.test',
        data: { url: 'https://x.test/?u=u1', n: 3, nested: { list: ['10%', true] } },
      },
    });
  });

  it('leave a campaign without markup alone', () => {
    const t = compile('plain body', 'skip', 'plain title', { a: 'b' });
    expect(t.personal).toBe(false);
    expect(t.needs.perRecipient).toBe(false);
    expect(t.render(bare)).toEqual({ kind: 'rendered', content: { title: 'plain title', body: 'plain body', data: { a: 'b' } } });
  });

  it('missing: "empty" renders a missing value as nothing', () => {
    expect(compile('Hi {{ recipient.attrs.first_name }}!').render(bare)).toMatchObject({ content: { body: 'Hi !' } });
  });

  it('missing: "skip" skips a recipient lacking a value, naming it', () => {
    const t = compile('Hi {{ recipient.attrs.first_name }}!', 'skip');
    expect(t.render(bare)).toEqual({ kind: 'skipped', reason: 'missing recipient.attrs.first_name' });
    expect(t.render(ann)).toMatchObject({ kind: 'rendered', content: { body: 'Hi Ann!' } });
    expect(compile('{{ recipient.attrs.x }}', 'skip').render({ ...ann, attrs: parseAttrs('{"x":null,"y":1}') })).toMatchObject({
      kind: 'skipped',
    });
    expect(compile('{{ recipient.address }}', 'skip').render(bare)).toEqual({ kind: 'skipped', reason: 'missing recipient.address' });
  });

  it('missing: "skip" does not skip a guarded or defaulted use', () => {
    const t = compile(
      '{% if recipient.attrs.nick %}{{ recipient.attrs.nick }}{% else %}friend{% endif %}, {{ recipient.attrs.city | default: "somewhere" }}',
      'skip',
    );
    expect(t.render(bare)).toMatchObject({ kind: 'rendered', content: { body: 'friend, somewhere' } });
  });

  it('missing: "skip" with a dynamic key renders strictly', () => {
    const t = compile('{% assign k = "city" %}{{ recipient.attrs[k] }}', 'skip');
    expect(t.needs.attrs).toBe('all');
    expect(t.render(ann)).toMatchObject({ content: { body: 'Oslo' } });
    expect(t.render(bare)).toMatchObject({ kind: 'skipped' });
  });

  it('refuse a template that does not parse, naming the field and the position', () => {
    expect(templateErrors({ title: 'ok', body: 'line one\nHi {{ recipient.attrs.x }' })).toEqual([
      { field: 'content.body', error: expect.stringMatching(/not closed at line 2 col 4$/) },
    ]);
    expect(templateErrors({ title: '{% if x %}', body: 'b', data: { deep: { s: '{{ | }}' } } }).map((e) => e.field)).toEqual([
      'content.title',
      'content.data.deep.s',
    ]);
  });

  it('refuse unknown variable roots and attribute names that cannot be carried', () => {
    const errs = templateErrors({ title: 'Hi {{ first_name }}', body: '{{ recipient.attrs["a b"] }}' });
    expect(errs).toEqual([
      { field: 'content.title', error: expect.stringContaining('unknown variable "first_name" at line 1 col 7') },
      { field: 'content.body', error: expect.stringContaining('attribute name "a b"') },
    ]);
    // locals are not roots
    expect(templateErrors({ title: '{% assign n = 1 %}{{ n }}', body: '{% for i in (1..3) %}{{ i }}{% endfor %}' })).toEqual([]);
  });

  describe('hostile templates', () => {
    it('no includes, renders, layouts (no file system at all)', () => {
      for (const src of ['{% include "/etc/passwd" %}', "{% render 'x' %}", '{% layout "a" %}', '{% block a %}{% endblock %}']) {
        const errs = templateErrors({ title: 't', body: src });
        expect(errs[0]?.error, src).toMatch(/is not allowed: templates read no files at line 1 col 1/);
      }
    });

    it('endless loops stop at the render limit and fail the message', () => {
      const t = compile('{% for i in (1..3000) %}{% for j in (1..3000) %}{% for k in (1..3000) %}x{% endfor %}{% endfor %}{% endfor %}');
      const t0 = Date.now();
      const r = t.render(ann);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(r).toMatchObject({ kind: 'failed', error: expect.stringMatching(/^template: .*limit exceeded/) });
    });

    it('huge output stops at the memory limit or the output cap', () => {
      const doubling = compile('{% assign s = "xxxxxxxxxx" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}');
      expect(doubling.render(ann)).toMatchObject({ kind: 'failed', error: expect.stringMatching(/limit exceeded/) });
      const long = CampaignTemplates.compile({ title: 't', body: '{% for i in (1..200) %}{{ variables.k }}{% endfor %}' }, 'empty', {
        ...CAMPAIGN,
        variables: { k: 'x'.repeat(1000) },
      });
      expect(long.render(ann)).toMatchObject({ kind: 'failed', error: expect.stringMatching(/more than 100000 characters/) });
      expect(compile('{% for i in (1..100000000) %}x{% endfor %}').render(ann)).toMatchObject({ kind: 'failed' });
    });

    it('no prototype walks', () => {
      const t = compile('[{{ recipient.attrs.constructor }}][{{ recipient.__proto__ }}][{{ campaign.constructor.name }}]');
      expect(t.render(ann)).toMatchObject({ content: { body: '[][][]' } });
    });
  });

  it('the fast path writes what liquidjs writes', () => {
    const liquid = new Liquid({ ownPropertyOnly: true });
    const value = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double({ noNaN: false }),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 3 }), fc.string(), { maxKeys: 2 }),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('a', 'b', 'size', 'first'), value), fc.string(), (generated, text) => {
        // as attributes arrive: decoded JSON
        const attrs = JSON.parse(JSON.stringify(generated)) as Record<string, unknown>;
        const clean = text.replace(/[{}%]/g, '');
        const body = `${clean}{{ recipient.attrs.a }}-{{recipient.attrs.b}}{{ recipient.attrs.a.size }}{{ recipient.attrs.size }}${clean}`;
        const t = compile(body);
        const scope = { recipient: { user_id: 'u', attrs }, campaign: { id: 7, name: 'Spring' }, variables: CAMPAIGN.variables };
        const expected = liquid.parseAndRenderSync(body, scope);
        expect(t.render({ userId: 'u', address: null, attrs })).toEqual({
          kind: 'rendered',
          content: { title: 'Hi', body: expected, data: null },
        });
      }),
      { numRuns: 300 },
    );
  });

  it('the cache compiles a campaign once', () => {
    const cache = new TemplateCache(2);
    const c = { ...CAMPAIGN, content: { title: 't', body: '{{ recipient.user_id }}' }, missing: 'empty' as const };
    expect(cache.get(c)).toBe(cache.get(c));
    cache.get({ ...c, id: 8 });
    cache.get({ ...c, id: 9 });
    const again = cache.get(c);
    expect(again).not.toBe(undefined);
  });
});
