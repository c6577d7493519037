import { describe, expect, it } from 'vitest';
import { WA_ERROR_CODES, describeWaError, isLimitError, isMediaError, isPermissionError, waErrorLabel } from '../../src/whatsapp/errors.js';

describe('WhatsApp calling error table', () => {
  it('covers 100, 613, 131055 and every defined 1380xx code, not the undefined ones', () => {
    for (const code of [100, 613, 131055, 138000, 138001, 138002, 138003, 138004, 138005, 138006, 138007, 138009, 138012, 138013, 138014, 138015, 138017, 138018, 138019, 138020, 138021, 138022, 138023]) {
      expect(WA_ERROR_CODES.has(code), String(code)).toBe(true);
    }
    for (const code of [138008, 138010, 138011, 138016]) expect(describeWaError(code)).toBeUndefined();
  });

  it('classifies permission, limit and media codes', () => {
    expect(isPermissionError(138006)).toBe(true);
    expect(isPermissionError(138009)).toBe(true);
    expect(isLimitError(138002)).toBe(true);
    expect(isLimitError(613)).toBe(true);
    expect(isMediaError(138021)).toBe(true);
    expect(isMediaError(138014)).toBe(false); // low quality, not invalid SDP
    expect(describeWaError(100)?.category).toBe('parameter');
  });

  it('labels codes for logs', () => {
    expect(waErrorLabel(138021)).toBe('138021 Media receive timeout (media)');
    expect(waErrorLabel(42)).toBe('42 unknown');
  });
});
