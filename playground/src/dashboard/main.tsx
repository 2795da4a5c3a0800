import { createRoot } from 'react-dom/client';
import { connect } from '../shared/client';
import { App } from './App';
import '../shared/base.css';
import './dashboard.css';

connect();
createRoot(document.getElementById('root')!).render(<App />);
