import type { ReactNode } from 'react'
import './styles.css'

export const metadata = {
  title: 'Kiln — live GPU network',
  description: 'Providers, jobs and settlements on the Kiln network',
}

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <header>
          <strong>🔥 Kiln</strong> <span className="muted">decentralized GPU compute · live network</span>
        </header>
        <main>{children}</main>
      </body>
    </html>
  )
}
