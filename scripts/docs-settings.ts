/** `npm run docs:settings`: writes README.md's settings table from src/config/schema.ts. */
import { readFileSync, writeFileSync } from 'node:fs';
import { withSettingsTable } from '../src/config/settings-table.js';

const file = new URL('../README.md', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = withSettingsTable(before);
if (after !== before) writeFileSync(file, after);
console.log(after === before ? 'README.md: settings table up to date' : 'README.md: settings table written');
