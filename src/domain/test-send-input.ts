/**
 * Validation of previews (`POST /v1/campaigns/:id/preview {user_ids?, sample?}`, and `POST /v1/previews` of
 * a campaign not saved) and test sends (`POST /v1/campaigns/:id/test {user_ids}`). Pure: parsed JSON in, a
 * typed command or every field error out.
 */
import { HeraldError, type FieldError } from '../errors.js';
import { validateCreateCampaign, type CreateCampaignInput } from './campaign-input.js';
import { MAX_USER_ID } from './event-input.js';

/** Recipients per preview or test send: a person reads the answer, and a test must stay a test. */
export const MAX_TEST_RECIPIENTS = 100;
/** Recipients a preview renders when it names neither `user_ids` nor `sample`. */
export const DEFAULT_SAMPLE = 10;

export type RecipientChoice = { kind: 'users'; userIds: string[] } | { kind: 'sample'; n: number };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function userIds(raw: unknown, errors: FieldError[]): string[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_TEST_RECIPIENTS) {
    errors.push({ field: 'user_ids', error: `must be a list of 1-${MAX_TEST_RECIPIENTS} user ids` });
    return [];
  }
  const ids: string[] = [];
  raw.forEach((v, i) => {
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_USER_ID)
      errors.push({ field: `user_ids[${i}]`, error: `must be a string of 1-${MAX_USER_ID} characters` });
    else if (!ids.includes(v)) ids.push(v);
  });
  return ids;
}

/** `{user_ids}` or `{sample: N}` (the audience's first N recipients); neither: a sample of DEFAULT_SAMPLE. */
export function validatePreview(body: unknown): RecipientChoice {
  if (!isObject(body)) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const errors: FieldError[] = [];
  let choice: RecipientChoice = { kind: 'sample', n: DEFAULT_SAMPLE };
  if (body.user_ids !== undefined && body.sample !== undefined)
    errors.push({ field: 'sample', error: 'name user_ids or sample, not both' });
  else if (body.user_ids !== undefined) choice = { kind: 'users', userIds: userIds(body.user_ids, errors) };
  else if (body.sample !== undefined) {
    const n = body.sample;
    if (!Number.isSafeInteger(n) || (n as number) < 1 || (n as number) > MAX_TEST_RECIPIENTS)
      errors.push({ field: 'sample', error: `must be an integer from 1 to ${MAX_TEST_RECIPIENTS}` });
    else choice = { kind: 'sample', n: n as number };
  }
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return choice;
}

export function validateTestSend(body: unknown): string[] {
  if (!isObject(body)) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const errors: FieldError[] = [];
  const ids = userIds(body.user_ids, errors);
  if (errors.length > 0) throw HeraldError.invalid(errors);
  return ids;
}

/**
 * `POST /v1/previews`: a campaign that is not saved (the fields of `POST /v1/campaigns`; `name` and
 * `channel` may be left out) and whom to render it for. Templates that do not parse are the same 400s as at
 * creation, so a form previewing as it is typed shows the errors creation would give.
 */
export function validateDraftPreview(body: unknown): { campaign: CreateCampaignInput; choice: RecipientChoice } {
  if (!isObject(body)) throw HeraldError.invalid([{ field: 'body', error: 'must be a JSON object' }]);
  const { user_ids, sample, ...fields } = body;
  const campaign = validateCreateCampaign({ name: 'preview', channel: { type: 'null' }, ...fields });
  const choice = validatePreview({ user_ids, sample });
  return { campaign, choice };
}
