import * as z from 'zod/mini';
import { FieldErrors, labelKeyProblem, labelValueProblem, type FieldPath } from './field-errors.js';

/** metav1.LabelSelector: its shape (zod) and the API server's checks of its content. */
export const labelSelectorSchema = z.strictObject({
  matchLabels: z.nullish(z.record(z.string(), z.string())),
  matchExpressions: z.nullish(
    z.array(
      z.strictObject({
        key: z.string(),
        operator: z.string(),
        values: z.nullish(z.array(z.string())),
      }),
    ),
  ),
});

export type LabelSelectorInput = z.infer<typeof labelSelectorSchema>;

export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

export function validateLabelSelector(sel: LabelSelectorInput, path: FieldPath, errs: FieldErrors): void {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    const kp = labelKeyProblem(k);
    if (kp) errs.invalid([...path, 'matchLabels'], k, kp);
    const vp = labelValueProblem(v);
    if (vp) errs.invalid([...path, 'matchLabels'], v, vp);
  }
  (sel.matchExpressions ?? []).forEach((r, i) => {
    const rp = [...path, 'matchExpressions', i];
    const values = r.values ?? [];
    switch (r.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0) errs.required([...rp, 'values'], "must be specified when `operator` is 'In' or 'NotIn'");
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0) errs.forbidden([...rp, 'values'], "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
        break;
      default:
        errs.invalid([...rp, 'operator'], r.operator, `not a valid selector operator (accepted: ${SELECTOR_OPERATORS.join(', ')})`);
    }
    const kp = labelKeyProblem(r.key);
    if (kp) errs.invalid([...rp, 'key'], r.key, kp);
    values.forEach((v, j) => {
      const vp = labelValueProblem(v);
      if (vp) errs.invalid([...rp, 'values', j], v, vp);
    });
  });
}
