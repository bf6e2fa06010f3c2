import type { TestProject } from 'vitest/node';
import { resolveServices, type ServiceUrls } from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    services: ServiceUrls;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const services = await resolveServices();
  project.provide('services', services.urls);
  return () => services.stop();
}
